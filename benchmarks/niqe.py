"""Throughput of the batched torch NIQE vs BasicSR's ``calculate_niqe`` in a process pool, on one machine.

Builds 296x296 patches (the paper's rank-dataset patch size) from scikit-image's sample photos,
half of them made SR-like (x4 bicubic down and up), and scores them all with crop_border=4 and
convert_to='y' by
  (a) ``basicsr.metrics.calculate_niqe`` in a 'spawn' process pool of ``--workers`` processes
      (one torch thread each),
  (b) ``niqe_batch`` on the CPU with ``torch.set_num_threads(cores)``: one single-threaded worker
      thread per core,
  (c) ``NiqeProcessPool`` (``niqe_batch`` in ``--workers`` single-threaded 'spawn' worker processes, the
      same pool treatment as (a)),
  (d) ``niqe_batch`` on CUDA, when available.
Same patches for every method; one untimed warm-up per method; wall-clock time of the scoring
call only (pool start-up and imports excluded); the best of ``--repeats`` runs. Prints a Markdown
table with the patches/s, the ratio to (a) and the max |NIQE difference| to (a).

    python benchmarks/niqe.py [--num-patches 256] [--device cpu [cuda]] [--workers CORES] [--repeats 3]
"""
import argparse
import multiprocessing as mp
import platform
import time
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np
import torch
from skimage import data as skdata

import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

# isort: split
from ranksrgan_plugin.iqa import NiqeProcessPool, niqe_batch
from ranksrgan_plugin.utils.cores import usable_cores

PATCH = 296
CROP_BORDER = 4
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'retina',
          'camera', 'brick', 'coins')


def make_patches(num: int, seed: int = 0) -> np.ndarray:
    """``num`` uint8 BGR 296x296 patches: random crops of the photos, every other one x4 bicubic down and up."""
    rng = np.random.default_rng(seed)
    photos = []
    for name in PHOTOS:
        img = getattr(skdata, name)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        if min(img.shape[:2]) >= PATCH:
            photos.append(np.ascontiguousarray(img[..., ::-1]))  # RGB -> BGR, like cv2 / BasicSR
    patches = np.empty((num, PATCH, PATCH, 3), dtype=np.uint8)
    for i in range(num):
        img = photos[i % len(photos)]
        y = rng.integers(0, img.shape[0] - PATCH + 1)
        x = rng.integers(0, img.shape[1] - PATCH + 1)
        patch = img[y:y + PATCH, x:x + PATCH]
        if i % 2:
            small = cv2.resize(patch, (PATCH // 4, PATCH // 4), interpolation=cv2.INTER_AREA)
            patch = cv2.resize(small, (PATCH, PATCH), interpolation=cv2.INTER_CUBIC)
        patches[i] = patch
    return patches


def _init_worker() -> None:
    torch.set_num_threads(1)  # one process per core: no oversubscription


def _basicsr_niqe(patch: np.ndarray) -> float:
    from basicsr.metrics.niqe import calculate_niqe

    return calculate_niqe(patch, CROP_BORDER, input_order='HWC', convert_to='y')


def best_time(run: Callable[[], np.ndarray], repeats: int) -> Tuple[float, np.ndarray]:
    """Best wall-clock seconds of ``repeats`` calls of ``run`` (after one untimed warm-up) and its result."""
    result = run()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, np.asarray(result, dtype=np.float64)


def bench_basicsr_pool(patches: np.ndarray, workers: int, repeats: int) -> Tuple[float, np.ndarray]:
    """(a): BasicSR in a spawn pool (fork after importing torch can hang)."""
    chunksize = max(1, len(patches) // (4 * workers))
    with mp.get_context('spawn').Pool(workers, initializer=_init_worker) as pool:
        pool.map(_basicsr_niqe, patches[:workers])  # start every worker and import basicsr
        return best_time(lambda: pool.map(_basicsr_niqe, patches, chunksize=chunksize), repeats)


def bench_ours(patches: np.ndarray, device: str, repeats: int) -> Tuple[float, np.ndarray]:
    """(b) / (c): the batched torch NIQE on ``device``; numpy uint8 in, numpy float64 out, like (a)."""
    niqe_batch(patches[:8], CROP_BORDER, device=device)  # tables, CUDA context, kernels
    return best_time(lambda: niqe_batch(patches, CROP_BORDER, device=device), repeats)


def bench_ours_processes(patches: np.ndarray, workers: int, repeats: int) -> Tuple[float, np.ndarray]:
    """(c): ``niqe_batch`` in a pool of single-threaded worker processes (started before the clock, as (a))."""
    with NiqeProcessPool(workers) as pool:
        pool(patches[:workers], crop_border=CROP_BORDER)  # start every worker, import
        return best_time(lambda: pool(patches, crop_border=CROP_BORDER), repeats)


def machine() -> str:
    """CPU model, core count, torch threads and GPU name, for the table caption."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    gpu = f', GPU: {torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else ''
    return f'{cpu}, {usable_cores()} cores, torch {torch.__version__}, numpy {np.__version__}{gpu}'


TABLE_HEADER = ['| method | device | patches/s | ratio vs basicsr pool | max \\|diff\\| |', '|---|---|---:|---:|---:|']


def table_row(method: str, device: str, rate: float, values: np.ndarray, baseline: Tuple[float, np.ndarray]) -> str:
    """One row: ``rate`` patches/s, its ratio to the BasicSR pool's and the max |NIQE difference| to its scores."""
    base_rate, base_values = baseline
    diff = float(np.max(np.abs(values - base_values)))
    return f'| {method} | {device} | {rate:.1f} | {rate / base_rate:.2f}x | {diff:.2e} |'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num-patches', type=int, default=256)
    default_devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    parser.add_argument('--device', nargs='+', default=default_devices, choices=['cpu', 'cuda'])
    parser.add_argument('--workers', type=int, default=usable_cores())
    parser.add_argument('--repeats', type=int, default=3)
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Print the caption and the header, then each method's row as soon as it is measured."""
    args = build_parser().parse_args(argv)
    patches = make_patches(args.num_patches)
    print(f'{len(patches)} patches {PATCH}x{PATCH}, crop_border={CROP_BORDER}, convert_to=y; {machine()}', flush=True)
    print('\n'.join(TABLE_HEADER), flush=True)
    seconds, base_values = bench_basicsr_pool(patches, args.workers, args.repeats)
    baseline = (len(patches) / seconds, base_values)
    print(table_row(f'basicsr calculate_niqe, {args.workers}-process spawn pool', 'cpu', baseline[0], base_values,
                    baseline), flush=True)
    for device in args.device:
        if device == 'cpu':
            torch.set_num_threads(usable_cores())
        seconds, values = bench_ours(patches, device, args.repeats)
        threads = f' ({torch.get_num_threads()} threads)' if device == 'cpu' else ''
        print(table_row(f'niqe_batch{threads}', device, len(patches) / seconds, values, baseline), flush=True)
        if device == 'cpu':
            seconds, values = bench_ours_processes(patches, args.workers, args.repeats)
            print(table_row(f'niqe_batch in {args.workers} worker processes (NiqeProcessPool)', device,
                            len(patches) / seconds, values, baseline), flush=True)


if __name__ == '__main__':
    main()
