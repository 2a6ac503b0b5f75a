"""A long command run with its output in a log file and a progress bar on the terminal (demo and paper road).

The command runs under :mod:`~ranksrgan_plugin.utils.process_guard`, which owns every process it starts:
a SIGTERM, SIGINT or SIGHUP to this process stops the command's whole tree (and raises :class:`Stopped`
here), and so does this process's death, even by SIGKILL.
"""
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from typing import Callable, Iterator, List, Mapping, Optional, Sequence

from tqdm import tqdm

from .live_processes import refuse_live
from .process_guard import GRACE_SECONDS, KILL_NOW, guard_command

_ITER = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+)')  # a training log line, not `total_iter:`
KILLED = -signal.SIGKILL
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_GUARD_SLACK = 10.0  # seconds the guard may take beyond its grace before it is killed itself


class Stopped(KeyboardInterrupt):
    """This process got a stop signal (``signum``) while a command ran: the command's processes were stopped."""

    def __init__(self, signum: int, what: str = 'the command') -> None:
        self.signum = signum
        super().__init__(f'{signal.Signals(signum).name} received: {what} and its processes were stopped')


def last_logged_iteration(log_path: str) -> int:
    """The iteration of the last training line (``[epoch: e, iter: i, ...``) of a BasicSR log (0 before the first)."""
    if not os.path.isfile(log_path):
        return 0
    with open(log_path, encoding='utf-8', errors='replace') as f:
        found = _ITER.findall(f.read())
    return int(found[-1].replace(',', '')) if found else 0


@contextlib.contextmanager
def stop_signals_noted() -> Iterator[List[int]]:
    """SIGTERM, SIGHUP and SIGINT only noted (in the list given) inside the block; the handlers before, after.

    Only in the main thread (elsewhere Python cannot set handlers: the list stays empty); a signal ignored
    before (``nohup``) stays ignored.
    """
    received: List[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is not signal.SIG_IGN and handler is not None:  # None: set outside Python, leave it
                previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end(process: subprocess.Popen, request: int, timeout: float, received: List[int]) -> None:
    """Ask the guard to stop the command (``request``) and wait for it; a further stop signal kills at once."""
    if process.poll() is None:
        process.send_signal(request)
    seen, deadline = len(received), time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if len(received) > seen:  # asked twice (Ctrl-C again): no grace
            process.send_signal(KILL_NOW)
            seen = len(received)
        time.sleep(0.05)
    if process.poll() is None:  # the guard does not answer: its command gets its parent-death signal
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_logged(command: Sequence[str], cwd: str, log_path: str, desc: str, total: Optional[int] = None,
               progress: Optional[Callable[[], int]] = None, stop_when: Optional[Callable[[], bool]] = None,
               env: Optional[Mapping[str, str]] = None, unit: str = 'it', show_bar: bool = True,
               lock_key: Optional[str] = None, stop_grace: float = GRACE_SECONDS) -> int:
    """Run ``command`` with stdout and stderr appended to ``log_path``; its exit status.

    While it runs a bar shows ``progress()`` out of ``total``. When ``stop_when()`` becomes true every
    process of the command is killed with SIGKILL (as a crash or a cluster's pre-emption would) and
    :data:`KILLED` is returned. A SIGTERM, SIGHUP or SIGINT to this process meanwhile stops them (SIGTERM,
    then SIGKILL after ``stop_grace`` seconds) and raises :class:`Stopped`; any other exception stops them
    too. This process's death, even by SIGKILL, stops them as well (see :mod:`.process_guard`).

    ``lock_key`` (a stage's options file): refuse with :class:`~.live_processes.LiveStageError`, starting
    nothing, when a live process has it as one of its arguments (the same stage still running).
    """
    what = desc.strip() or 'the command'
    if lock_key is not None:
        refuse_live(lock_key, what)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, 'a', encoding='utf-8') as log, stop_signals_noted() as received, \
            tqdm(total=total, desc=desc, unit=unit, mininterval=1.0, disable=not show_bar) as bar:
        process = subprocess.Popen(guard_command(command, stop_grace), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   env=None if env is None else dict(env), start_new_session=True)
        try:
            while process.poll() is None and not received:
                time.sleep(0.5)
                if progress is not None:
                    bar.update(max(progress() - bar.n, 0))
                if stop_when is not None and not received and stop_when():
                    _end(process, KILL_NOW, _GUARD_SLACK, received)
                    return KILLED
            if received:  # also when the command ended of the same signal meanwhile (a scheduler signals all)
                raise Stopped(received[0], what)
            if progress is not None:
                bar.update(max(progress() - bar.n, 0))
        except BaseException:
            _end(process, signal.SIGTERM, stop_grace + _GUARD_SLACK, received)
            raise
    return process.returncode
