"""Live processes found by their command line (Linux /proc), so that a stage is never run twice at once.

A training stage of the paper road left running (by an older road killed with ``kill -9``, or by a road
still running in another terminal) would train into the same experiment as the rerun: :func:`refuse_live`
names it instead. Where there is no /proc nothing is found and nothing is refused.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple


class LiveStageError(RuntimeError):
    """A live process already runs with the same key (a stage's options file) on its command line."""


@dataclass(frozen=True)
class LiveProcess:
    """A running process: its pid, its parent's, its argv and its working directory ('' if unreadable)."""

    pid: int
    ppid: int
    argv: Tuple[str, ...]
    cwd: str = ''


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:  # ended meanwhile, or not ours to read
        return None


def live_processes() -> Dict[int, LiveProcess]:
    """Every running process with a command line (zombies and kernel threads have none); {} without /proc."""
    if not osp.isdir('/proc/self'):
        return {}
    found = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        cmdline, stat = _read(f'/proc/{name}/cmdline'), _read(f'/proc/{name}/stat')
        if not cmdline or not stat:
            continue
        fields = stat.rsplit(b')', 1)[1].split()  # the name in parentheses may hold anything
        if fields[0] in (b'Z', b'X'):
            continue
        try:
            cwd = os.readlink(f'/proc/{name}/cwd')
        except OSError:
            cwd = ''
        argv = tuple(arg.decode(errors='replace') for arg in cmdline.rstrip(b'\0').split(b'\0'))
        found[int(name)] = LiveProcess(int(name), int(fields[1]), argv, cwd)
    return found


def _names(entry: str, key: str, cwd: str) -> bool:
    """``entry`` is ``key``, or the same path written otherwise (relative to the process's directory)."""
    if entry == key:
        return True
    if osp.basename(entry) != osp.basename(key):
        return False
    if not osp.isabs(entry):
        if not cwd:
            return False
        entry = osp.join(cwd, entry)
    return osp.normpath(entry) == osp.normpath(osp.abspath(key))


def holding(key: str, processes: Optional[Dict[int, LiveProcess]] = None,
            exclude: Iterable[int] = ()) -> List[LiveProcess]:
    """The live processes (but this one and ``exclude``) with ``key`` as one of their argv entries, by pid."""
    processes = live_processes() if processes is None else processes
    skip = {os.getpid(), *exclude}
    return sorted((p for p in processes.values() if p.pid not in skip and any(_names(a, key, p.cwd) for a in p.argv)),
                  key=lambda p: p.pid)


def refuse_live(key: str, what: str = 'this command') -> None:
    """Raise :class:`LiveStageError` when a live process other than this one has ``key`` in its argv.

    The message names the top processes (those whose parent is not among them) with their command lines,
    the pids below them, and says to stop them or wait for them.
    """
    found = holding(key)
    if not found:
        return
    pids = {p.pid for p in found}
    tops = [p for p in found if p.ppid not in pids]
    below = sorted(pids - {p.pid for p in tops})
    lines = [f'  pid {p.pid}: {" ".join(p.argv)}' for p in tops]
    if below:
        lines.append(f'  and {len(below)} process(es) started by them: pids {", ".join(map(str, below))}')
    stop = ' '.join(str(p.pid) for p in tops)
    raise LiveStageError(
        f'Not starting {what}: {key} is on the command line of {len(pids)} live process(es), a run of the same '
        'stage (left by an earlier road, or a road running elsewhere); two runs would write into the same '
        'outputs.\n' + '\n'.join(lines) + f'\nStop it (kill {stop}) or wait for it to end, then run the road again.')
