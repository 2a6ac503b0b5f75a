"""The rank-dataset build's overlapping stages: a background thread reads the next images, runs their levels
and their sharpness filter while the main thread labels this one, and a thread pool PNG-encodes and writes
this one's patches while the next one is labelled.

OpenCV, NumPy and torch release the GIL in their kernels, so these threads run beside the main thread's
labelling. An image's record is committed (``commit``) only once all its patches are on
disk, so a killed build never leaves a record whose patches are missing: the resume guarantee of
:mod:`.builder` holds as in a sequential build.
"""
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Tuple

import cv2
import numpy as np

from ..utils.cores import usable_cores
from .options import RankDatasetBuildError

# OpenCV's own PNG defaults (no parameters: zlib level 1, its speed setting). On 296x296 rank patches
# (benchmarks/rank_dataset.py --png) they encode 1.7x and decode 1.6x faster than an explicit level 1 (BasicSR's
# make_lmdb_from_imgs) for 12% more bytes; decoding is paid again at every Ranker training step.
PNG_COMPRESSION = 1  # the zlib level, as BasicSR's LmdbMaker records it in meta_info.txt
PNG_PARAMS: Tuple[int, ...] = ()


def default_io_threads() -> int:
    """Threads writing patches: the cores this process may use, at most 8."""
    return max(1, min(8, usable_cores()))


def write_png(path: str, patch: np.ndarray) -> float:
    """Encode ``patch`` (BGR uint8) as PNG into ``path``; the seconds it took."""
    started = time.perf_counter()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        written = cv2.imwrite(path, patch, list(PNG_PARAMS))
    except (OSError, cv2.error) as error:
        raise RankDatasetBuildError(f'Cannot write {path}: {error}') from error
    if not written:
        raise RankDatasetBuildError(f'Cannot write {path} (disk full?).')
    return time.perf_counter() - started


def read_ahead(load: Callable[[str], Any], stems: Iterable[str], depth: int = 2) -> Iterator[Tuple[str, Any]]:
    """``(stem, load(stem))`` in order, with up to ``depth`` further loads running in a background thread."""
    stems = iter(stems)
    with ThreadPoolExecutor(1, thread_name_prefix='rank-read') as pool:
        pending: Deque[Tuple[str, Future]] = deque()

        def submit_next() -> None:
            stem = next(stems, None)
            if stem is not None:
                pending.append((stem, pool.submit(load, stem)))

        for _ in range(depth + 1):
            submit_next()
        while pending:
            stem, future = pending.popleft()
            submit_next()
            yield stem, future.result()


class PatchWriter:
    """Writes staged patches in a thread pool and commits each image's record after its patches.

    ``stage(path, patch)`` queues one patch of the current image; ``finish_image(record)`` closes the
    image; ``commit(record)`` is called in image order, once every patch of that image is written, with
    the image's write seconds (summed over threads) added to ``record['seconds']['write']``. At most
    ``max_pending`` images wait for their writes (the patches of the pending images stay in memory).
    """

    def __init__(self, commit: Callable[[Dict[str, Any]], None], threads: int, max_pending: int = 2) -> None:
        self.commit, self.max_pending = commit, max_pending
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix='rank-write')
        self.current: List[Future] = []
        self.pending: Deque[Tuple[Dict[str, Any], List[Future]]] = deque()

    def stage(self, path: str, patch: np.ndarray) -> None:
        self.current.append(self.pool.submit(write_png, path, patch))

    def finish_image(self, record: Dict[str, Any]) -> None:
        self.pending.append((record, self.current))
        self.current = []
        while self.pending and (len(self.pending) > self.max_pending or _all_done(self.pending[0][1])):
            self._commit_oldest()

    def drain(self) -> None:
        """Wait for every queued write and commit the remaining records."""
        while self.pending:
            self._commit_oldest()

    def _commit_oldest(self) -> None:
        record, futures = self.pending.popleft()
        seconds = sum(future.result() for future in futures)  # re-raises a failed write
        record['seconds']['write'] = record['seconds'].get('write', 0.0) + seconds
        self.commit(record)

    def close(self) -> None:
        """Stop the pool; queued writes of uncommitted images are dropped (a resumed build redoes them)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'PatchWriter':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _all_done(futures: List[Future]) -> bool:
    return all(future.done() for future in futures)
