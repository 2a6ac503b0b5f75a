"""One rank-dataset build over the processes of torch's launcher (``torchrun``; on slurm, ``srun`` + ``torchrun``).

Every process builds the images ``todo[rank::world_size]`` into the same unfinished output folder (each
image has its own record and patch files, so the processes never write the same file), then rank 0 writes
the splits from all the records after a barrier: the finalising code and the files it reads are those of a
single-process build, so the result is the same, byte for byte. The output folder must therefore be on a
file system every process sees. Only barriers cross processes (gloo, which needs no GPU).
"""
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

# A barrier waits for the slowest process's share of the images (hours with Ma labels on CPU).
BARRIER_TIMEOUT = timedelta(days=7)
T = TypeVar('T')


@dataclass
class BuildProcesses:
    """The processes of one build: this one's ``rank``, their number, this one's ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process prepares and finalises the output (rank 0)."""
        return self.rank == 0

    def share(self, items: Sequence[T]) -> Sequence[T]:
        """This process's part of ``items``: every ``world_size``-th item from the ``rank``-th."""
        return items[self.rank::self.world_size]

    def barrier(self) -> None:
        """Wait until every process of the build gets here (nothing to do in a single process)."""
        if self.world_size > 1:
            dist.barrier(group=self.group)

    def device(self, device: Optional[str]) -> Optional[str]:
        """The torch device of this process: ``cuda:<local_rank>`` when the build's is CUDA or unset and
        there are GPUs, else ``device`` as given (an explicit ``cuda:<i>`` is kept)."""
        if self.world_size == 1 or not torch.cuda.is_available() or device not in (None, 'cuda'):
            return device
        return f'cuda:{self.local_rank % torch.cuda.device_count()}'


def launched_processes() -> BuildProcesses:
    """The build's processes as torch's launcher started them (``WORLD_SIZE`` > 1), or a single process.

    Joins (or reuses) the default process group; barriers run in a gloo group, so a process group
    started by the caller with NCCL works too.
    """
    if int(os.environ.get('WORLD_SIZE', '1')) <= 1 and not dist.is_initialized():
        return BuildProcesses()
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group('gloo', timeout=BARRIER_TIMEOUT)
    group = None if dist.get_backend() == 'gloo' else dist.new_group(backend='gloo', timeout=BARRIER_TIMEOUT)
    return BuildProcesses(dist.get_rank(), dist.get_world_size(), int(os.environ.get('LOCAL_RANK', 0)), group,
                          owns_group)


def close_processes(processes: BuildProcesses) -> None:
    """After a last barrier, close the process group if :func:`launched_processes` started it."""
    if processes.world_size > 1 and dist.is_initialized():
        dist.barrier(group=processes.group)
        if processes.owns_group:
            dist.destroy_process_group()
