"""Seconds per image of Ma et al.'s metric: one 512x512 image and 296x296 patches (batched), on this machine.

Features (DCT, steerable-pyramid GSM, SVD) plus the three forests. Without the authors' model.mat
(``--model``, ``$RANKSRGAN_MA_MODEL`` or ``~/.cache/ranksrgan_plugin/ma/model.mat``) a synthetic model of
the same shape (3 forests x ``--trees`` trees of ``--depth`` levels; the authors trained 2000 trees) times the
forests. Prints one Markdown table; the best of ``--repeats`` runs after one warm-up.

    python benchmarks/ma.py [--threads 2] [--patches 16] [--device cpu|cuda] [--repeats 3]
"""
import argparse
import platform
import time

import numpy as np
import torch

import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

# isort: split
from ranksrgan_plugin.metrics import ma_metric as M


def synthetic_model(trees: int, depth: int, seed: int = 0) -> M.MaModel:
    """Complete binary trees with random splits over the real feature sizes."""
    rng = np.random.default_rng(seed)
    nodes = 2 ** (depth + 1) - 1
    forests = []
    for group in M.GROUPS:
        idx = np.arange(nodes)
        internal = idx < 2 ** depth - 1
        ldau = np.where(internal, 2 * idx + 2, 0)[:, None].repeat(trees, 1)
        rdau = np.where(internal, 2 * idx + 3, 0)[:, None].repeat(trees, 1)
        status = np.where(internal, -3, -1)[:, None].repeat(trees, 1)
        forests.append(M.RegressionForest(ldau, rdau, status, rng.normal(size=(nodes, trees)),
                                          rng.uniform(0, 10, (nodes, trees)),
                                          rng.integers(1, M.FEATURE_SIZES[group] + 1, (nodes, trees))))
    return M.MaModel(forests, np.array([0.0, 1 / 3, 1 / 3, 1 / 3]))


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--patches', type=int, default=16)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--model', default=None)
    ap.add_argument('--trees', type=int, default=2000)
    ap.add_argument('--depth', type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        model, source = M.load_ma_model(args.model), 'model.mat'
    except FileNotFoundError:
        model, source = synthetic_model(args.trees, args.depth), f'synthetic ({args.trees} trees, depth {args.depth})'
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    patches = rng.integers(0, 256, (args.patches, 296, 296, 3), dtype=np.uint8)
    t_img = best_time(lambda: M.ma_batch(img, 4, 'HWC', model, args.device), args.repeats)
    t_patch = best_time(lambda: M.ma_batch(patches, 4, 'HWC', model, args.device), args.repeats) / args.patches
    y = M._to_y_batch(img, 'HWC', 4)
    feats = M.ma_features_batch(y, args.device)
    t_forest = best_time(lambda: model.predict(feats), args.repeats)
    print(f'{platform.processor() or platform.machine()}, torch threads {args.threads}, device {args.device}, '
          f'model {source}\n')
    print('| input | s per image |\n|---|---|')
    print(f'| 512x512 (features + forests) | {t_img:.3f} |')
    print(f'| 512x512 forests only | {t_forest:.3f} |')
    print(f'| 296x296 patch, batch of {args.patches} | {t_patch:.3f} |')


if __name__ == '__main__':
    main()
