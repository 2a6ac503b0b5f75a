"""Processes for tests/test_road_processes.py.

    python tests/process_tree.py tree READY          # a tree of processes; their pids in READY once all run
    python tests/process_tree.py parent READY LOG    # a small 'road': run_logged(tree) with a 1 s grace

The tree: this process, a multiprocessing child (as a DataLoader worker), a subprocess, one in a session of
its own (as torchrun's workers) and one that ignores SIGTERM (only SIGKILL ends it). The parent exits
128 + the signal's number when run_logged raised ``Stopped``. It loads ``ranksrgan_plugin.utils`` without the
package's ``__init__`` (torch, BasicSR: seconds per process); run_logged needs none of it.
"""
import multiprocessing
import os
import os.path as osp
import subprocess
import sys
import time
import types

HERE = osp.dirname(osp.abspath(__file__))
SLEEP = 'import time; time.sleep(600)'
DEAF = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print("deaf", flush=True); time.sleep(600)'


def _sleep() -> None:
    time.sleep(600)


def tree(ready: str) -> None:
    worker = multiprocessing.get_context('fork').Process(target=_sleep)
    worker.start()
    child = subprocess.Popen([sys.executable, '-c', SLEEP])
    own_session = subprocess.Popen([sys.executable, '-c', SLEEP], start_new_session=True)
    deaf = subprocess.Popen([sys.executable, '-c', DEAF], stdout=subprocess.PIPE)
    deaf.stdout.readline()  # its SIGTERM is ignored from now on
    with open(ready + '.tmp', 'w') as f:
        f.write(' '.join(str(pid) for pid in (os.getpid(), worker.pid, child.pid, own_session.pid, deaf.pid)))
    os.replace(ready + '.tmp', ready)
    time.sleep(600)


def tree_command(ready: str) -> list:
    return [sys.executable, osp.join(HERE, 'process_tree.py'), 'tree', ready]


def parent(ready: str, log: str) -> int:
    package = types.ModuleType('ranksrgan_plugin')
    package.__path__ = [osp.join(osp.dirname(HERE), 'ranksrgan_plugin')]
    sys.modules['ranksrgan_plugin'] = package
    from ranksrgan_plugin.utils.logged_process import Stopped, run_logged
    try:
        return run_logged(tree_command(ready), HERE, log, 'tree', show_bar=False, stop_grace=1)
    except Stopped as stopped:
        return 128 + stopped.signum


if __name__ == '__main__':
    if sys.argv[1] == 'tree':
        tree(sys.argv[2])
    else:
        sys.exit(parent(sys.argv[2], sys.argv[3]))
