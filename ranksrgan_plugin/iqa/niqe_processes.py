"""``niqe_batch`` in single-threaded worker processes on the CPU.

Two threads of ``niqe_batch`` in one process scale ~1.3x on two cores (the GIL-held dispatch of many small
torch operations), two processes ~1.8x (docs/niqe.md). :class:`NiqeProcessPool` spreads a batch over
'spawn' worker processes, each running ``niqe_batch`` with one thread; every image's score is computed by the
same code as in-process, so the scores are identical. Start-up costs a few seconds (each worker imports torch
and BasicSR), paid once per pool: worth it for long jobs such as labelling a rank dataset.
"""
import multiprocessing as mp
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, Optional

import numpy as np
import torch

from .niqe import niqe_batch

__all__ = ['NiqeProcessPool']
_CHUNKS_PER_PROCESS = 2  # several chunks per worker, so that the workers finish together


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core


def _score(path: str, start: int, stop: int, options: Dict[str, Any]) -> np.ndarray:
    """Scores of images ``start:stop`` of the batch the parent saved in ``path`` (memory-mapped)."""
    imgs = np.load(path, mmap_mode='r')[start:stop]
    return niqe_batch(np.array(imgs), device='cpu', **options)  # a private, writable copy of the slice


def _scratch_folder() -> Optional[str]:
    """RAM-backed /dev/shm where there is one (Linux), else the default temporary folder."""
    return '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) else None


class NiqeProcessPool:
    """NIQE (BasicSR's definition, as :func:`~ranksrgan_plugin.iqa.niqe_batch`) in ``processes`` worker processes.

    ``pool(imgs, **options)`` takes ``niqe_batch``'s arguments except ``device`` (always the CPU) and returns
    the same scores. Close it with :meth:`close` (or use it as a context manager).
    """

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f'NiqeProcessPool needs >= 1 process, got {processes}.')
        self.processes = processes
        self._executor = ProcessPoolExecutor(processes, mp_context=mp.get_context('spawn'), initializer=_init_worker)

    def __call__(self, imgs: np.ndarray, **options: Any) -> np.ndarray:
        imgs = np.asarray(imgs)
        if len(imgs) == 0:
            return np.zeros(0)
        # the batch goes to the workers through one file in RAM: pickling it through the pipes costs more
        fd, path = tempfile.mkstemp(suffix='.npy', prefix='niqe_batch_', dir=_scratch_folder())
        try:
            with os.fdopen(fd, 'wb') as f:
                np.save(f, imgs)
            bounds = np.linspace(0, len(imgs), min(len(imgs), self.processes * _CHUNKS_PER_PROCESS) + 1).astype(int)
            futures = [self._executor.submit(_score, path, int(start), int(stop), options)
                       for start, stop in zip(bounds[:-1], bounds[1:])]
            return np.concatenate([future.result() for future in futures])
        finally:
            os.unlink(path)

    def close(self) -> None:
        """Stop the worker processes."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'NiqeProcessPool':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
