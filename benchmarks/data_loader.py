"""The paper's RankSRGAN training loader: BasicSR's PairedImageDataset (a whole 2K PNG and its LR decoded per
296 crop) vs RawPairedImageDataset (decoded once, memory-mapped), samples per second per worker, same run.

DIV2K-shaped inputs: ``--images`` mosaics of the bundled photos at 2040x1356 with their x4 LR (PNG, OpenCV's
default compression, as DIV2K's). Each loader serves ``--samples`` training items (GT 296, flips and rotations)
in one process (a DataLoader worker's work); beside them the rate one step of ``--step-seconds`` at batch
``--batch`` needs from all workers together.

    python benchmarks/data_loader.py [--images 4] [--samples 40] [--step-seconds 0.1 0.25]
"""
import argparse
import os
import os.path as osp
import random
import sys
import tempfile
import time
from typing import List, Optional

import cv2

import ranksrgan_plugin  # noqa: F401  (compat fixes first)

# isort: split
from basicsr.data.paired_image_dataset import PairedImageDataset

from ranksrgan_plugin.data import RawPairedImageDataset
from ranksrgan_plugin.demo_images import export_skimage_photos

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from rank_dataset import mosaic  # noqa: E402  (the same DIV2K-like mosaics as the rank-dataset benchmark)

DIV2K_SIZE = (2040, 1356)


def write_div2k_like(root: str, count: int) -> None:
    photos = [cv2.imread(path) for path in export_skimage_photos(osp.join(root, 'photos'))]
    for kind in ('gt', 'lq'):
        os.makedirs(osp.join(root, kind), exist_ok=True)
    for index in range(count):
        hr = mosaic(photos[index:] + photos[:index], DIV2K_SIZE)
        cv2.imwrite(osp.join(root, 'gt', f'{index:04d}.png'), hr)
        cv2.imwrite(osp.join(root, 'lq', f'{index:04d}.png'),
                    cv2.resize(hr, (DIV2K_SIZE[0] // 4, DIV2K_SIZE[1] // 4), interpolation=cv2.INTER_AREA))


def dataset_options(root: str, **extra) -> dict:
    return {'name': 'DIV2K_like', 'dataroot_gt': osp.join(root, 'gt'), 'dataroot_lq': osp.join(root, 'lq'),
            'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}, 'phase': 'train', 'scale': 4, 'gt_size': 296,
            'use_hflip': True, 'use_rot': True, **extra}


def samples_per_second(dataset, samples: int) -> float:
    random.seed(0)
    dataset[0]  # first touch
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=4)
    parser.add_argument('--samples', type=int, default=40)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--step-seconds', type=float, nargs='+', default=[0.1, 0.25])
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Print the caption and the header, then each loader's row as soon as it is measured."""
    args = build_parser().parse_args(argv)
    print(f'\n{args.images} DIV2K-shaped images ({DIV2K_SIZE[0]}x{DIV2K_SIZE[1]} + x4 LR), GT 296, flips and '
          f'rotations, {args.samples} samples, one process', flush=True)
    print('| loader | samples/s per worker | ratio |\n|---|---:|---:|', flush=True)
    with tempfile.TemporaryDirectory() as root:
        write_div2k_like(root, args.images)
        upstream = samples_per_second(PairedImageDataset(dataset_options(root)), args.samples)
        print(f'| PairedImageDataset (BasicSR, decodes per crop) | {upstream:.1f} | 1.00 |', flush=True)
        start = time.perf_counter()
        raw = RawPairedImageDataset(dataset_options(root, raw_cache=osp.join(root, 'raw')))
        build = (time.perf_counter() - start) / args.images
        ours = samples_per_second(raw, args.samples)
    print(f'| RawPairedImageDataset (ours, decoded once: {build:.3f} s per image) | {ours:.1f} | '
          f'{ours / upstream:.1f} |', flush=True)
    for seconds in args.step_seconds:
        need = args.batch / seconds
        print(f'a step of {seconds:g} s at batch {args.batch} needs {need:.0f} samples/s: '
              f'{need / upstream:.1f} workers of BasicSR\'s loader, {need / ours:.2f} of ours', flush=True)


if __name__ == '__main__':
    main()
