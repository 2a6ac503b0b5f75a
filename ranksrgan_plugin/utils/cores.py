"""How many CPU cores this process may use."""
import os


def usable_cores() -> int:
    """The cores this process may run on (taskset / cgroup affinity on Linux, else all of them)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
