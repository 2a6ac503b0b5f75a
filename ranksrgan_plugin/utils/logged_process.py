"""A long command run with its output in a log file and a progress bar on the terminal (demo and paper road)."""
import os
import re
import signal
import subprocess
import time
from typing import Callable, Mapping, Optional, Sequence

from tqdm import tqdm

_ITER = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+)')  # a training log line, not `total_iter:`
KILLED = -signal.SIGKILL


def last_logged_iteration(log_path: str) -> int:
    """The iteration of the last training line (``[epoch: e, iter: i, ...``) of a BasicSR log (0 before the first)."""
    if not os.path.isfile(log_path):
        return 0
    with open(log_path, encoding='utf-8', errors='replace') as f:
        found = _ITER.findall(f.read())
    return int(found[-1].replace(',', '')) if found else 0


def run_logged(command: Sequence[str], cwd: str, log_path: str, desc: str, total: Optional[int] = None,
               progress: Optional[Callable[[], int]] = None, stop_when: Optional[Callable[[], bool]] = None,
               env: Optional[Mapping[str, str]] = None, unit: str = 'it', show_bar: bool = True) -> int:
    """Run ``command`` with stdout and stderr appended to ``log_path``; its exit status.

    While it runs a bar shows ``progress()`` out of ``total``. When ``stop_when()`` becomes true the
    command's whole process group is killed with SIGKILL (as a crash or a cluster's pre-emption would)
    and :data:`KILLED` is returned. An interrupt of this process kills the command too.
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, 'a', encoding='utf-8') as log, \
            tqdm(total=total, desc=desc, unit=unit, mininterval=1.0, disable=not show_bar) as bar:
        process = subprocess.Popen(list(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   env=None if env is None else dict(env), start_new_session=True)
        try:
            while process.poll() is None:
                time.sleep(0.5)
                if progress is not None:
                    bar.update(max(progress() - bar.n, 0))
                if stop_when is not None and stop_when():
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    return KILLED
            if progress is not None:
                bar.update(max(progress() - bar.n, 0))
        except BaseException:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            raise
    return process.returncode
