"""``niqe_batch`` in single-threaded worker processes on the CPU.

Two threads of ``niqe_batch`` in one process scale ~1.3x on two cores (the GIL-held dispatch of many small
torch operations), two processes ~1.8x (docs/niqe.md). :class:`NiqeProcessPool` spreads a batch over
'spawn' worker processes, each running ``niqe_batch`` with one thread; every image's score is computed by the
same code as in-process, so the scores are identical. Start-up costs a few seconds (each worker imports torch
and BasicSR), paid once per pool: worth it for long jobs such as labelling a rank dataset.
"""
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict

import numpy as np
import torch

from .niqe import niqe_batch

__all__ = ['NiqeProcessPool']
_CHUNKS_PER_PROCESS = 4  # several chunks per worker, so that the workers finish together


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core


def _score(imgs: np.ndarray, options: Dict[str, Any]) -> np.ndarray:
    return niqe_batch(imgs, device='cpu', **options)


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
        parts = np.array_split(np.arange(len(imgs)), min(len(imgs), self.processes * _CHUNKS_PER_PROCESS))
        futures = [self._executor.submit(_score, imgs[part], options) for part in parts]
        return np.concatenate([future.result() for future in futures])

    def close(self) -> None:
        """Stop the worker processes."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'NiqeProcessPool':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
