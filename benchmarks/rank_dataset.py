"""The whole rank-dataset build, ours vs the straightforward BasicSR pipeline, same inputs, same run, same machine.

Both build the same dataset from the same HR images (the original rules: MATLAB grid, compute_sharpness >= 40,
gap filter on the gray NIQE of the last two levels, at most 200 random locations per image, NIQE labels on Y
with a 4-pixel shave, 10% of the locations to val) and the benchmark checks they agree (keys, labels).

- **reference** (what a BasicSR user would write): per image, read + BasicSR's MATLAB ``imresize`` for the LR,
  the levels, the selection; every NIQE (gap filter and labels) by BasicSR's ``calculate_niqe`` per patch in
  a 'spawn' process pool over all cores (one torch thread each; the pool is started before the clock); each
  patch written by ``cv2.imwrite``; then BasicSR's ``make_lmdb_from_imgs`` (``LmdbMaker``, PNG level 1) packs
  each level of each split and a labels file is written.
- **ours**: ``RankDatasetBuilder`` (``tools/make_rank_dataset.py``) in this process, and optionally the tool
  under ``torchrun --nproc_per_node=N`` (process start-up included).

Levels: the built-in ``bicubic, sharpened, hr`` (default), or ``--levels network``: SRResNet (MSRResNet
64x16), a second SRResNet and ESRGAN (RRDBNet 64x23) with random weights, for the cost of the paper's
network levels (use ``--device cuda``; on a CPU they take minutes per 2K image); random weights make
meaningless images, so with them the sharpness and gap filters are off and every grid location (up to
200 per image) is labelled: an upper bound of the per-location cost. The inputs are the bundled
scikit-image photos (and mirrored copies, ``--copies``), or with ``--size WxH`` mosaics of them of that size
(e.g. 2040x1356, DIV2K-like). Prints the end-to-end table, the per-stage table, and with ``--png`` the PNG
encoder settings (ms and KiB per patch) on the built patches.

    python benchmarks/rank_dataset.py [--copies 4] [--stride 74] [--torchrun 2] [--png] [--device cpu|cuda]
"""
import argparse
import contextlib
import io
import multiprocessing as mp
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

# isort: split
from basicsr.data.transforms import mod_crop
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from ranksrgan_plugin.data.rank_dataset_format import read_labels
from ranksrgan_plugin.demo_images import export_skimage_photos
from ranksrgan_plugin.rank_dataset import RankDatasetBuilder, build_level, load_config
from ranksrgan_plugin.rank_dataset.image_processor import StageTimer
from ranksrgan_plugin.rank_dataset.levels import matlab_bicubic
from ranksrgan_plugin.rank_dataset.patch_metrics import rgb2gray_uint8
from ranksrgan_plugin.rank_dataset.patch_selection import choose_patches, crop, patch_grid, sharp_corners, stable_seed
from ranksrgan_plugin.rank_dataset.sources import ImageSource, key_stem, patch_split
from ranksrgan_plugin.utils.cores import usable_cores

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAIRS_AT_SCALE = 150_000  # the paper's rank dataset: ~150K locations (pairs), 3 levels each




# ------------------------------------------------------------------------------------------------- inputs
def make_inputs(folder: str, copies: int, size: Optional[Tuple[int, int]]) -> str:
    """An HR folder: the bundled photos (``copies`` > 1 adds mirrored / flipped copies), or mosaics of ``size``."""
    photos = [cv2.imread(p) for p in export_skimage_photos(osp.join(folder, 'photos'))]
    hr = osp.join(folder, 'hr')
    os.makedirs(hr, exist_ok=True)
    flips = [lambda im: im, lambda im: im[:, ::-1], lambda im: im[::-1], lambda im: im[::-1, ::-1]]
    for copy in range(copies):
        for index, photo in enumerate(photos):
            img = flips[copy % 4](photo)
            if size is not None:
                img = mosaic([flips[(copy + k) % 4](photos[(index + k) % len(photos)]) for k in range(len(photos))],
                             size)
            cv2.imwrite(osp.join(hr, f'img{copy:02d}_{index:02d}.png'), np.ascontiguousarray(img))
    return hr


def mosaic(images: Sequence[np.ndarray], size: Tuple[int, int]) -> np.ndarray:
    """A ``size`` (w, h) image tiled row by row with ``images`` at their own size (cropped at the edges)."""
    width, height = size
    out = np.zeros((height, width, 3), np.uint8)
    y = x = row_h = 0
    for img in (images[i % len(images)] for i in range(10_000)):
        if y >= height:
            break
        h, w = min(img.shape[0], height - y), min(img.shape[1], width - x)
        out[y:y + h, x:x + w] = img[:h, :w]
        row_h, x = max(row_h, h), x + w
        if x >= width:
            y, x, row_h = y + row_h, 0, 0
    return out


def level_options(kind: str, folder: str) -> List[Dict[str, Any]]:
    """The levels: built-in upscalers + HR, or three randomly initialised networks (weights saved in ``folder``)."""
    if kind == 'builtin':
        return [{'name': 'bicubic', 'type': 'builtin'}, {'name': 'sharpened', 'type': 'builtin'},
                {'name': 'hr', 'type': 'hr'}]
    from basicsr.archs import build_network

    nets = {'srresnet': {'type': 'MSRResNet', 'num_feat': 64, 'num_block': 16, 'upscale': 4},
            'srgan': {'type': 'MSRResNet', 'num_feat': 64, 'num_block': 16, 'upscale': 4},
            'esrgan': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 23,
                       'num_grow_ch': 32}}
    levels = []
    for seed, (name, net) in enumerate(nets.items()):
        torch.manual_seed(seed)
        path = osp.join(folder, f'{name}.pth')
        torch.save({'params': build_network(dict(net)).state_dict()}, path)
        levels.append({'name': name, 'type': 'network', 'network': net, 'weights': path})
    return levels


# ---------------------------------------------------------------------------------------------- reference
def _init_worker() -> None:
    torch.set_num_threads(1)


def _basicsr_niqe(patch: np.ndarray, crop_border: int, input_order: str) -> float:
    from basicsr.metrics.niqe import calculate_niqe

    return float(calculate_niqe(patch, crop_border, input_order=input_order, convert_to='y'))


def reference_build(cfg: Dict[str, Any], output: str, pool: Any) -> Tuple[Dict[Tuple[str, str], float],
                                                                          Dict[str, float], int]:
    """The straightforward pipeline: (labels {(key, level): label}, seconds per stage, locations kept)."""
    clock = StageTimer()
    levels = [build_level(opt, cfg['scale'], cfg['device']) for opt in cfg['levels']]
    names = [level.name for level in levels]
    size = cfg['patch_size']
    source = ImageSource(cfg['hr'])
    rows, staged = {}, defaultdict(list)  # staged[(split, level)] = [(key, path)]
    for stem in source.stems():
        clock.lap('other')
        hr = mod_crop(source.read(stem), cfg['scale'])
        lr = matlab_bicubic(hr, 1 / cfg['scale'])
        clock.lap('read')
        srs = {level.name: level(lr, hr, stem) for level in levels}
        clock.lap('levels')
        corners = patch_grid(*hr.shape[:2], size, cfg['stride'], cfg['grid'])
        sharp = sharp_corners(srs[cfg['sharpness_level']], corners, size, cfg['sharpness_threshold'],
                              cfg['sharpness_block'], cfg['sharpness_measure'])
        clock.lap('sharpness')
        passed = list(range(len(sharp)))
        if cfg['min_gap']:
            gap = [rgb2gray_uint8(crop(srs[name], c, size)) for name in cfg['gap_levels'] for c in sharp]
            scores = pool.starmap(_basicsr_niqe, [(p, 0, 'HW') for p in gap])
            passed = [i for i in passed if abs(scores[i] - scores[len(sharp) + i]) > cfg['min_gap']]
        chosen = choose_patches(passed, cfg['max_patches_per_image'], cfg['max_patches_choice'],
                                stable_seed(cfg['seed'], 'patches', stem))
        kept = [sharp[i] for i in chosen]
        clock.lap('gap')
        labels = pool.starmap(_basicsr_niqe, [(crop(srs[name], c, size), 4, 'HWC') for name in names for c in kept])
        clock.lap('labels')
        grid_index = {corner: i for i, corner in enumerate(corners)}
        for j, name in enumerate(names):
            for i, corner in enumerate(kept):
                key = f'{key_stem(stem)}_s{grid_index[corner]:04d}'
                split = patch_split(key, cfg['val_fraction'], cfg['seed'])
                path = osp.join(output, 'staged', split, name, f'{key}.png')
                os.makedirs(osp.dirname(path), exist_ok=True)
                cv2.imwrite(path, crop(srs[name], corner, size))
                staged[(split, name)].append((key, path))
                rows[(key, name)] = labels[j * len(kept) + i]
        clock.lap('write')
    for (split, name), items in staged.items():
        items.sort()
        os.makedirs(osp.join(output, split), exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            make_lmdb_from_imgs(osp.join(output, 'staged', split, name), osp.join(output, split, f'{name}.lmdb'),
                                [osp.basename(p) for _, p in items], [k for k, _ in items], compress_level=1)
    for split in {split for split, _ in staged}:
        with open(osp.join(output, split, 'labels.txt'), 'w', encoding='utf-8') as f:
            f.writelines(f'{key} {name} {rows[(key, name)]:.6f}\n' for key, name in sorted(rows)
                         if patch_split(key, cfg['val_fraction'], cfg['seed']) == split)
    clock.lap('pack')
    clock.seconds.pop('other', None)
    return rows, clock.seconds, len(rows) // len(names)


# ------------------------------------------------------------------------------------------------ ours
def our_build(cfg: Dict[str, Any]) -> Tuple[Dict[Tuple[str, str], float], Dict[str, float], float]:
    """``RankDatasetBuilder`` in this process: (labels, seconds per stage from its manifest, wall seconds)."""
    started = time.perf_counter()
    manifest = RankDatasetBuilder(cfg, overwrite=True, progress=False).run()
    seconds = time.perf_counter() - started
    return read_split_labels(cfg['output']), manifest['timings_s'], seconds


def torchrun_build(cfg: Dict[str, Any], config_file: str, processes: int) -> Tuple[Dict, float]:
    """The tool under ``torchrun --nproc_per_node=processes``: (labels, wall seconds incl. process start-up)."""
    import yaml

    with open(config_file, 'w', encoding='utf-8') as f:
        yaml.safe_dump(cfg, f)
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={processes}',
               osp.join(ROOT, 'tools', 'make_rank_dataset.py'), '-opt', config_file, '--overwrite', '--no-progress']
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f'torchrun build failed:\n{result.stderr[-3000:]}')
    return read_split_labels(cfg['output']), seconds


def read_split_labels(root: str) -> Dict[Tuple[str, str], float]:
    labels = {}
    for split in ('train', 'val'):
        if osp.isfile(osp.join(root, split, 'labels.txt')):
            labels.update(read_labels(osp.join(root, split, 'labels.txt')))
    return labels


# ------------------------------------------------------------------------------------------------ tables
def agreement(ours: Dict, reference: Dict) -> str:
    if set(ours) != set(reference):
        return f'keys differ ({len(set(ours) ^ set(reference))} of {len(reference)})'
    return f'same keys, max abs label diff {max(abs(ours[k] - reference[k]) for k in reference):.1e}'


def png_table(root: str, limit: int = 300) -> List[str]:
    """ms and KiB per patch of PNG encoder settings, on (up to ``limit``) patches of the built dataset."""
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith('.png'))[:limit]
    patches = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths]
    settings = {'OpenCV default (ours; the reference\'s cv2.imwrite)': [],
                'level 0': [cv2.IMWRITE_PNG_COMPRESSION, 0],
                'level 1 (BasicSR make_lmdb_from_imgs)': [cv2.IMWRITE_PNG_COMPRESSION, 1],
                'level 3': [cv2.IMWRITE_PNG_COMPRESSION, 3],
                'level 6': [cv2.IMWRITE_PNG_COMPRESSION, 6],
                'level 1 + Z_RLE': [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                                           cv2.IMWRITE_PNG_STRATEGY_RLE],
                'level 1 + Z_HUFFMAN_ONLY': [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                                             cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]}
    lines = [f'PNG encoding of {len(patches)} patches (one thread):', '',
             '| setting | ms / patch | KiB / patch | decode ms / patch |', '|---|---:|---:|---:|']
    for name, params in settings.items():
        started = time.perf_counter()
        encoded = [cv2.imencode('.png', p, params)[1] for p in patches]
        encode_ms = 1000 * (time.perf_counter() - started) / len(patches)
        started = time.perf_counter()
        for buf in encoded:
            cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        decode_ms = 1000 * (time.perf_counter() - started) / len(patches)
        kib = sum(len(b) for b in encoded) / len(encoded) / 1024
        lines.append(f'| {name} | {encode_ms:.2f} | {kib:.1f} | {decode_ms:.2f} |')
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--copies', type=int, default=4, help='copies of the photos (mirrored), default 4')
    parser.add_argument('--size', help='WxH mosaics instead of the photos, e.g. 2040x1356')
    parser.add_argument('--stride', type=int, default=74, help='patch stride (the original: 148), default 74')
    parser.add_argument('--levels', choices=['builtin', 'network'], default='builtin')
    parser.add_argument('--device', default='cpu', help='our build\'s device (the reference pool is CPU)')
    parser.add_argument('--workers', type=int, default=usable_cores(), help='reference pool processes')
    parser.add_argument('--torchrun', type=int, default=0, help='also run the tool under torchrun with N processes')
    parser.add_argument('--skip-reference', action='store_true', help='ours only (e.g. network levels on CUDA)')
    parser.add_argument('--png', action='store_true', help='also time PNG encoder settings')
    parser.add_argument('--io-threads', type=int, help='our writer threads (default: the build\'s default)')
    parser.add_argument('--torch-threads', type=int, default=usable_cores(), help='our torch threads (default: cores)')
    parser.add_argument('--keep', help='keep the outputs in this folder')
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split('x')) if args.size else None

    work = args.keep or tempfile.mkdtemp(prefix='rank_bench_')
    hr = make_inputs(work, args.copies, size)
    levels = level_options(args.levels, work)
    options = {'hr': hr, 'output': osp.join(work, 'ours'), 'levels': levels, 'stride': args.stride,
               'device': args.device, 'io_threads': args.io_threads}
    if args.levels == 'network':  # random weights give meaningless images: no filters, every location labelled
        options.update(sharpness_threshold=None, min_gap=0)
    cfg = load_config(options)
    rows = []
    reference = None
    if not args.skip_reference:
        with mp.get_context('spawn').Pool(args.workers, initializer=_init_worker) as pool:
            warm = np.random.default_rng(0).integers(0, 256, (192, 192), dtype=np.uint8)
            pool.starmap(_basicsr_niqe, [(warm, 0, 'HW')] * args.workers)  # start the workers, import basicsr
            started = time.perf_counter()
            # the same levels on the same device (the networks' cost is not what the two pipelines differ in)
            reference, ref_stages, locations = reference_build(cfg, osp.join(work, 'reference'), pool)
            ref_seconds = time.perf_counter() - started
        rows.append((f'reference: BasicSR calculate_niqe in a {args.workers}-process pool, cv2.imwrite, '
                     'make_lmdb_from_imgs', 'cpu', ref_seconds, 'reference'))
    torch.set_num_threads(args.torch_threads)
    labels, stages, seconds = our_build(cfg)
    rows.append((f'ours: RankDatasetBuilder ({torch.get_num_threads()} torch threads)', args.device, seconds,
                 agreement(labels, reference) if reference else '-'))
    locations = len(labels) // len(levels)
    if args.torchrun:
        tr_cfg = {**cfg, 'output': osp.join(work, 'torchrun')}
        tr_labels, tr_seconds = torchrun_build(tr_cfg, osp.join(work, 'torchrun.yml'), args.torchrun)
        rows.append((f'ours: torchrun --nproc_per_node={args.torchrun}', args.device, tr_seconds,
                     agreement(tr_labels, labels)))

    images = len(os.listdir(hr))
    print(f'{images} HR images ({size and args.size or "photos"}), levels {[lv["name"] for lv in levels]}, '
          f'stride {args.stride}: {locations} locations kept, {locations * len(levels)} patches; '
          f'{usable_cores()} cores, torch {torch.__version__}'
          + (f', GPU {torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else ''))
    print('\n| pipeline | device | seconds | patches/s | vs reference | '
          f'hours for {PAIRS_AT_SCALE // 1000}K locations | agreement |')
    print('|---|---|---:|---:|---:|---:|---|')
    base = rows[0][2] if reference else None
    for name, device, secs, agree in rows:
        rate = locations * len(levels) / secs
        ratio = f'{base / secs:.2f}x' if base else '-'
        hours = PAIRS_AT_SCALE / (locations / secs) / 3600
        print(f'| {name} | {device} | {secs:.1f} | {rate:.1f} | {ratio} | {hours:.1f} | {agree} |')
    stage_rows(stages, ref_stages if reference else None)
    if args.png:
        print()
        print('\n'.join(png_table(osp.join(work, 'reference', 'staged') if reference else osp.join(work, 'ours'))))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def stage_rows(ours: Dict[str, float], reference: Optional[Dict[str, float]]) -> None:
    """Per-stage seconds; ours overlap (reading ahead, writing in threads), so they add up to more than the wall."""
    ours = dict(ours)
    ours['levels'] = sum(v for k, v in list(ours.items()) if k.startswith('level_'))
    ours['labels'] = ours.pop('metric', 0.0)
    stages = ['read', 'levels', 'sharpness', 'gap', 'labels', 'write', 'pack']
    print('\nPer stage (seconds; ours: summed over images, the read-ahead and writer threads overlap the rest):\n')
    print('| stage | reference s | ours s | reference / ours |')
    print('|---|---:|---:|---:|')
    for stage in stages:
        ref = reference.get(stage, 0.0) if reference else float('nan')
        mine = ours.get(stage, 0.0)
        ratio = f'{ref / mine:.1f}x' if reference and mine > 0.005 else '-'
        print(f'| {stage} | {ref:.2f} | {mine:.2f} | {ratio} |')


if __name__ == '__main__':
    main()
