"""Runs one command and owns every process it starts: nothing outlives the guard's stop or its parent.

    python -I ranksrgan_plugin/utils/process_guard.py --parent <pid> --grace 5 -- <command ...>

:func:`~ranksrgan_plugin.utils.logged_process.run_logged` starts each stage of the paper road through
this guard, in a session of its own. The guard runs the command in a process group of its own and

* on SIGTERM, SIGINT or SIGHUP, or when its parent (the road) dies, however it dies (Linux:
  ``PR_SET_PDEATHSIG``; everywhere: its parent pid polled), sends SIGTERM to the command's processes,
  waits ``--grace`` seconds for them to end (BasicSR, mmengine, torchrun close their workers) and then
  kills what is left with SIGKILL;
* on SIGUSR1 kills them all with SIGKILL at once (the rehearsal's crash);
* when the command ends, stops what it left running (a DataLoader worker, a daemon);
* exits as the command did: its exit code, or killed by the signal that killed it.

"The command's processes" are its process group and, on Linux, every descendant of the guard: the guard
is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a process whose parent dies is re-parented to it
instead of to init, and one in a session of its own (torchrun's workers) is found as well.

Only the standard library is imported: the guard is run as a file with ``python -I`` so that it starts in
milliseconds, without importing the plugin (torch, BasicSR).
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Set

GRACE_SECONDS = 5.0
KILL_NOW = signal.SIGUSR1  # sent by run_logged's stop_when: the tree dies at once, as in a crash
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_POLL = 0.1
_PREFIX = '[process_guard]'


def _prctl() -> Optional[Callable[..., int]]:
    """libc's ``prctl`` on Linux, else None."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def set_parent_death_signal(prctl: Optional[Callable[..., int]], signum: int) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent thread ends (Linux only)."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


def process_table() -> Optional[Dict[int, tuple]]:
    """``{pid: (ppid, pgid, state)}`` of every process, from /proc; None where there is no /proc."""
    if not os.path.isdir('/proc/self'):
        return None
    table = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat', 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()  # the name in parentheses may hold anything
        except OSError:  # ended meanwhile
            continue
        table[int(name)] = (int(fields[1]), int(fields[2]), fields[0].decode())
    return table


def descendants(table: Dict[int, tuple], root: int) -> Set[int]:
    """The pids below ``root`` in ``table``."""
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Guard:
    """The command's process and the signals that stop it (see the module docstring)."""

    def __init__(self, command: Sequence[str], parent: Optional[int], grace: float) -> None:
        self.command, self.parent, self.grace = list(command), parent, grace
        self.requests: List[int] = []
        self.child: Optional[subprocess.Popen] = None
        self.status: Optional[int] = None
        self.prctl = _prctl()

    # -- signals ------------------------------------------------------------------------------
    def _note(self, signum: int, frame) -> None:
        self.requests.append(signum)

    def install(self) -> None:
        """Signal handlers first (a signal before them ends the guard, before any command starts)."""
        for signum in (*STOP_SIGNALS, KILL_NOW):
            signal.signal(signum, self._note)
        set_parent_death_signal(self.prctl, signal.SIGTERM)
        if self.prctl is not None:
            self.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def parent_gone(self) -> bool:
        return self.parent is not None and os.getppid() != self.parent

    # -- the command --------------------------------------------------------------------------
    def _in_own_group(self) -> None:  # runs in the command's process between fork and exec
        os.setpgid(0, 0)
        set_parent_death_signal(self.prctl, signal.SIGTERM)  # the guard killed by SIGKILL: the command stops

    def start(self) -> None:
        self.child = subprocess.Popen(self.command, preexec_fn=self._in_own_group)

    def reap(self) -> None:
        """Collect every ended child (the command, and orphans re-parented to the subreaper guard)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child is not None and pid == self.child.pid:
                self.status = self.child.returncode = os.waitstatus_to_exitcode(status)

    def live(self) -> Set[int]:
        """The command's processes still running, zombies left out (no /proc: ``{-pgid}``, its group)."""
        pgid = self.child.pid
        table = process_table()
        if table is None:  # the process group is all that can be followed
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return set()
            return {-pgid}
        mine = descendants(table, os.getpid()) | {pid for pid, (_, group, _) in table.items() if group == pgid}
        return {pid for pid in mine if table[pid][2] not in 'ZX'}

    def signal_all(self, signum: int, pids: Set[int], group: bool = True) -> None:
        """``signum`` to the command's group (one call reaches all of it at once), then to each of ``pids``."""
        for target in sorted(({-self.child.pid} if group else set()) | pids):  # negative: a process group
            try:
                os.killpg(-target, signum) if target < 0 else os.kill(target, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def kill_all(self) -> None:
        """SIGKILL until none of the command's processes runs (a forking process may add some meanwhile)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.reap()
            pids = self.live()
            if not pids:
                return
            self.signal_all(signal.SIGKILL, pids)
            time.sleep(0.02)
        say(f'processes {sorted(self.live())} survived SIGKILL for 60 s')

    def stop(self, why: str) -> None:
        """SIGTERM to the command's processes, ``grace`` seconds, then SIGKILL to those left.

        A SIGUSR1 meanwhile cuts the grace short.
        """
        self.reap()
        pids = self.live()
        if not pids:
            return
        say(f'{why}: SIGTERM to {describe(self.command)} (pid {self.child.pid}) and its processes, '
            f'SIGKILL to those still running after {self.grace:g} s')
        sent: Set[int] = set()
        deadline = time.monotonic() + self.grace
        while pids and time.monotonic() < deadline and KILL_NOW not in self.requests:
            self.signal_all(signal.SIGTERM, pids - sent, group=not sent)  # once each: a second may cut its cleanup
            self.signal_all(signal.SIGCONT, pids - sent, group=not sent)  # a stopped one handles SIGTERM once continued
            sent |= pids
            time.sleep(0.05)
            self.reap()
            pids = self.live()
        if pids:
            say(f'SIGKILL to pids {sorted(pids)}, still running')
            self.kill_all()

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> int:
        """Run the command to its end or to a stop; its exit status (negative: killed by that signal)."""
        self.install()
        if self.parent_gone():  # died before the death signal was set: start nothing
            say(f'the parent process {self.parent} ended before the command started: not started')
            return -signal.SIGTERM
        if self.requests:
            return -self.requests[0]
        try:
            self.start()
        except OSError as error:
            say(f'cannot start {describe(self.command)}: {error}')
            return 127
        while self.status is None:
            if self.requests:
                self._handle(self.requests.pop(0))
            elif self.parent_gone():
                self.stop(f'the parent process {self.parent} ended')
            time.sleep(_POLL)
            self.reap()
        self.stop('the command ended')  # what it left running (its exit status is kept)
        return self.status

    def _handle(self, signum: int) -> None:
        if signum == KILL_NOW:
            self.kill_all()
        else:
            self.stop(f'{signal.Signals(signum).name} received')


def describe(command: Sequence[str], limit: int = 200) -> str:
    text = ' '.join(command)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def say(message: str) -> None:
    print(f'{_PREFIX} {message}', file=sys.stderr, flush=True)


def exit_as(status: int) -> None:
    """Exit with ``status``; a negative one by that signal, as the command ended (no core file)."""
    if status >= 0:
        sys.exit(status)
    signum = -status
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    time.sleep(1)  # a signal whose default is to be ignored
    os._exit(128 + signum)


def guard_command(command: Sequence[str], grace: float = GRACE_SECONDS, parent: Optional[int] = None) -> List[str]:
    """The command line that runs ``command`` under the guard (``parent``: this process by default)."""
    return [sys.executable, '-I', os.path.abspath(__file__), '--parent', str(parent or os.getpid()),
            '--grace', str(grace), '--', *command]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--parent', type=int, help='stop the command when this process is no longer the parent')
    parser.add_argument('--grace', type=float, default=GRACE_SECONDS, help='seconds between SIGTERM and SIGKILL')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='-- then the command')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command given (after --)')
    exit_as(Guard(command, args.parent, args.grace).run())


if __name__ == '__main__':
    main()
