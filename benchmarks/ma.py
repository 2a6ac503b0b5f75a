"""Seconds per image of Ma et al.'s metric, ours side by side with the pyiqa port (NRQM), same run, same machine.

Rows: one 512x512 image (scikit-image's astronaut, Y, 4-pixel shave: 504x504) and 296x296 patches (shave 4,
batched); features (DCT, steerable-pyramid GSM, SVD) plus the three forests for ours. The reference column is
pyiqa's feature code (``pyiqa/archs/nrqm_arch.py``; pyiqa is under a non-commercial licence, so it is not a
dependency: unpack its wheel and pass the folder). Without the authors' model.mat (``--model``,
``$RANKSRGAN_MA_MODEL`` or ``~/.cache/ranksrgan_plugin/ma/model.mat``) a synthetic model of the same shape
(3 forests x ``--trees`` trees of ``--depth`` levels; the authors trained 2000 trees) times the forests.
Prints one Markdown table; the best of ``--repeats`` runs after one warm-up. The patches go through as one batch
(``ma_batch(..., batch_size=--patches)``: one image at a time on the CPU, the whole batch at once on CUDA); the
last rows give patches per second, with and without the forests. On CUDA the timings synchronise the device, and
the pyiqa reference runs on the same device.

    pip download pyiqa==0.1.16 --no-deps -d /tmp/pyiqa && unzip -q /tmp/pyiqa/pyiqa-*.whl -d /tmp/pyiqa/pkg
    python benchmarks/ma.py [--pyiqa /tmp/pyiqa/pkg] [--threads 2] [--patches 8] [--device cpu|cuda]
    python benchmarks/ma.py --device cuda --patches 256     # batched patches/s on a GPU
    python benchmarks/ma.py --device cuda --compare-cpu     # first: CUDA features equal the CPU's
"""
import argparse
import importlib
import platform
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

# isort: split
from ranksrgan_plugin import iqa


def synthetic_model(trees: int, depth: int, seed: int = 0) -> iqa.MaModel:
    """Complete binary trees with random splits over the real feature sizes."""
    rng = np.random.default_rng(seed)
    nodes = 2 ** (depth + 1) - 1
    forests = []
    for group in iqa.GROUPS:
        idx = np.arange(nodes)
        internal = idx < 2 ** depth - 1
        ldau = np.where(internal, 2 * idx + 2, 0)[:, None].repeat(trees, 1)
        rdau = np.where(internal, 2 * idx + 3, 0)[:, None].repeat(trees, 1)
        status = np.where(internal, -3, -1)[:, None].repeat(trees, 1)
        forests.append(iqa.RegressionForest(ldau, rdau, status, rng.normal(size=(nodes, trees)),
                                          rng.uniform(0, 10, (nodes, trees)),
                                          rng.integers(1, iqa.FEATURE_SIZES[group] + 1, (nodes, trees))))
    return iqa.MaModel(forests, np.array([0.0, 1 / 3, 1 / 3, 1 / 3]))


def pyiqa_features(folder: str) -> Callable[[torch.Tensor], None]:
    """pyiqa's NRQM feature extraction (its ``nrqm()`` without the forests) for Y batches (N, 1, H, W) in [0, 255].

    Only ``pyiqa/archs/nrqm_arch.py`` and what it imports are loaded (empty parent packages stand in for
    pyiqa's ``__init__`` files, which import every model and its dependencies).
    """
    root = Path(folder) / 'pyiqa'
    if not (root / 'archs' / 'nrqm_arch.py').is_file():
        raise FileNotFoundError(f'--pyiqa {folder}: no pyiqa/archs/nrqm_arch.py there (unpack the pyiqa wheel)')
    for name, path in (('pyiqa', root), ('pyiqa.archs', root / 'archs'), ('pyiqa.utils', root / 'utils')):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    nrqm = importlib.import_module('pyiqa.archs.nrqm_arch')

    def features(y: torch.Tensor) -> None:
        img = y.double()
        nrqm.global_gsm(img)
        for level in nrqm.get_gauss_pyramid(img / 255.0):
            nrqm.block_dct(level)
            torch.linalg.svd(nrqm.im2col(level, 5, 'distinct'), full_matrices=False)

    return features


def best_time(fn: Callable[[], object], repeats: int, device: str = 'cpu') -> float:
    """The fastest of ``repeats`` runs after one warm-up (the device synchronised around each run)."""
    def sync() -> None:
        if torch.device(device).type == 'cuda':
            torch.cuda.synchronize(device)

    fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def row(name: str, ours: float, reference: Optional[float]) -> str:
    if reference is None:
        return f'| {name} | {ours:.3f} | - | - |'
    return f'| {name} | {ours:.3f} | {reference:.3f} | {reference / ours:.1f}x |'


def relative_difference(values: np.ndarray, reference: np.ndarray) -> float:
    """Max |values - reference| over the group, relative to the reference's largest magnitude (features near 0
    would make an element-wise ratio meaningless)."""
    scale = max(float(np.max(np.abs(reference))), 1e-12)
    return float(np.max(np.abs(values - reference))) / scale


def cpu_agreement(inputs: Dict[str, torch.Tensor], device: str, tolerance: float) -> bool:
    """Print, per input and feature group, how far the features on ``device`` are from the CPU's; True when every
    one is within ``tolerance``. Printed before the timings; skipped (a row says so) when ``device`` is the CPU."""
    print(f'| input | group | max relative difference, {device} vs cpu |\n|---|---|---:|', flush=True)
    if torch.device(device).type == 'cpu':
        print('| all | all | skipped on CPU: the comparison needs a CUDA device |\n', flush=True)
        return True
    worst = 0.0
    for name, y in inputs.items():
        cpu, other = iqa.ma_features_batch(y, 'cpu'), iqa.ma_features_batch(y, device)
        for group in cpu:
            difference = relative_difference(other[group], cpu[group])
            worst = max(worst, difference)
            print(f'| {name} | {group} | {difference:.2e} |', flush=True)
    same = worst <= tolerance
    print(f"features on {device} {'equal' if same else 'DIFFER FROM'} the CPU's (max {worst:.2e}, tolerance "
          f'{tolerance:g})\n', flush=True)
    return same


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--patches', type=int, default=8)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--model', default=None)
    ap.add_argument('--trees', type=int, default=2000)
    ap.add_argument('--depth', type=int, default=10)
    ap.add_argument('--pyiqa', default=None, help='folder holding an unpacked pyiqa wheel (the reference column)')
    ap.add_argument('--compare-cpu', action='store_true',
                    help="first check that the features on --device equal the CPU's (exit status 1 if not)")
    ap.add_argument('--tolerance', type=float, default=1e-6, help='of --compare-cpu, relative to each group')
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model, source = iqa.load_ma_model(args.model), 'model.mat'
    except FileNotFoundError:
        model, source = synthetic_model(args.trees, args.depth), f'synthetic ({args.trees} trees, depth {args.depth})'
    from skimage import data

    bgr = data.astronaut()[None, ..., ::-1].copy()
    crops = [bgr[0, y:y + 296, x:x + 296] for y in (0, 216) for x in (0, 108, 216)]
    patches = np.stack([crops[i % len(crops)] for i in range(args.patches)])
    y_img, y_patches = iqa.to_y_matlab(bgr, 'HWC', 4), iqa.to_y_matlab(patches, 'HWC', 4)
    dev, n = args.device, len(patches)
    compared = {'512x512 image': y_img, f'{min(n, 8)} patches 296x296 (one batch)': y_patches[:8]}
    same = cpu_agreement(compared, dev, args.tolerance) if args.compare_cpu else True
    reference = pyiqa_features(args.pyiqa) if args.pyiqa else None
    cuda = torch.device(dev).type == 'cuda'
    name = torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine()
    print(f'{name}, torch threads {args.threads}, device {dev}, '
          f'model {source}; reference: pyiqa NRQM features{"" if args.pyiqa else " (not given: --pyiqa)"}\n')
    print('| input | ours s/image | pyiqa s/image (features only) | pyiqa / ours |\n|---|---|---|---|', flush=True)
    t_img = best_time(lambda: iqa.ma_batch(bgr, 4, 'HWC', model, dev), args.repeats, dev)
    ref_img = best_time(lambda: reference(y_img[:, None].to(dev)), 1, dev) if reference else None
    print(row('512x512 (504x504 after shave), features + forests', t_img, ref_img), flush=True)
    feats = iqa.ma_features_batch(y_img, dev)
    print(row('512x512 forests only', best_time(lambda: model.predict(feats), args.repeats), None), flush=True)
    t_patch = best_time(lambda: iqa.ma_batch(patches, 4, 'HWC', model, dev, batch_size=n), args.repeats, dev) / n
    ref_patch = best_time(lambda: reference(y_patches[:, None].to(dev)), 1, dev) / n if reference else None
    print(row(f'296x296 patch, batch of {n}', t_patch, ref_patch), flush=True)
    t_patch_feats = best_time(lambda: iqa.ma_features_batch(y_patches, dev), args.repeats, dev) / n
    print(f'\n296x296 patches, batch of {n}: {1 / t_patch:.1f} patches/s (features + forests), '
          f'{1 / t_patch_feats:.1f} patches/s (features only)', flush=True)
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
