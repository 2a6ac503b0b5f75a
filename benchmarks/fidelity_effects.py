"""Measured effects of the original code's behaviours on the demo data (docs/fidelity.md).

    python benchmarks/fidelity_effects.py [--seeds 0 1 2] [--skip-ranker] [--batchnorm-groups]

Prints four tables, each the original's behaviour side by side with the alternative option:
1. rank-dataset locations kept on the demo photos by each grid / sharpness / gap-metric rule (D3-D5);
2. the demo Ranker's validation SROCC and pair accuracy when trained with one forward pass per
   pair side (the original) or one joint pass, with and without the [-5, 5] score clamp (R1-R2), and
   with the original's pair order (better level first) or a random one (R5); ``--variants 0 1`` runs
   only the first two trainings;
3. the rank-content loss of the same Ranker scores under the original's sum and a mean (S1);
4. the frozen Ranker's scores with batch-statistics BatchNorm (the original) and eval mode (S3);
``--batchnorm-groups``: only the Ranker trained at batch 16 per side with BatchNorm groups of 8 (the original's two
GPUs) or over all 16 (R6), and the frozen Ranker's scores and rank-content loss with groups of 4 or all 8 (S4).
Tables 2-4 train the demo Ranker (options/train_Ranker_demo.yml) through basicsr/train.py, a few
minutes per run on 2 CPU cores; ``--skip-ranker`` prints table 1 only.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Sequence

import numpy as np
import torch
import yaml

import ranksrgan_plugin  # noqa: F401  (compat fixes before any basicsr import)

# isort: split
from basicsr.archs import build_network
from basicsr.data.transforms import mod_crop

from ranksrgan_plugin.archs.ghost_batchnorm import use_batchnorm_groups
from ranksrgan_plugin.archs.ranker_arch import freeze_ranker
from ranksrgan_plugin.checkpoints import load_ranker
from ranksrgan_plugin.data.rank_dataset_format import read_manifest
from ranksrgan_plugin.data.rank_pair_dataset import RankPairDataset
from ranksrgan_plugin.demo_images import export_skimage_photos
from ranksrgan_plugin.losses import RankContentLoss
from ranksrgan_plugin.metrics.rank_metrics import calculate_srocc
from ranksrgan_plugin.metrics.ranker_evaluation import evaluate_ranker
from ranksrgan_plugin.rank_dataset import RankDatasetBuilder, load_config
from ranksrgan_plugin.rank_dataset.levels import build_level, matlab_bicubic, read_image
from ranksrgan_plugin.rank_dataset.patch_metrics import build_patch_metric
from ranksrgan_plugin.rank_dataset.patch_selection import crop, patch_grid, sharp_corners

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
DATAROOT = 'datasets/demo/rank_niqe_builtin'
DATASET_OPTIONS = osp.join(REPO_ROOT, 'options', 'rank_dataset_demo.yml')
RANKER_OPTIONS = osp.join(REPO_ROOT, 'options', 'train_Ranker_demo.yml')
ORIGINAL_RANKER = ['train:pair_forward=separate', 'train:rank_opt:clamp=5', 'datasets:train:pair_order=better_first']
RANKER_VARIANTS = {  # name: --force_yml entries
    'separate pass + clamp 5, better level first (the original)': [
        'train:pair_forward=separate', 'train:rank_opt:clamp=5', 'datasets:train:pair_order=better_first'],
    'separate pass + clamp 5, random pair order': [
        'train:pair_forward=separate', 'train:rank_opt:clamp=5', 'datasets:train:pair_order=random'],
    'separate pass, no clamp': ['train:pair_forward=separate', 'train:rank_opt:clamp=~'],
    'joint pass + clamp 5': ['train:pair_forward=joint', 'train:rank_opt:clamp=5'],
    'joint pass, no clamp (the demo)': ['train:pair_forward=joint', 'train:rank_opt:clamp=~'],
    'the original at batch 16 per side: BatchNorm groups of 8 (its 2 GPUs)': [
        *ORIGINAL_RANKER, 'datasets:train:batch_size_per_gpu=16', 'train:batchnorm_group=8'],
    'the original at batch 16 per side: statistics over all 16 (1 GPU, no groups)': [
        *ORIGINAL_RANKER, 'datasets:train:batch_size_per_gpu=16', 'train:batchnorm_group=~'],
}
GROUP_VARIANTS = (5, 6)  # --batchnorm-groups: the two trainings above and the frozen Ranker's groups of 4 vs 8


def read_yaml(path: str) -> Dict:
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


# The levels these measurements were made with (docs/fidelity.md): classical filters and the HR image.
BUILTIN_LEVELS = {'levels': [{'name': 'bicubic', 'type': 'builtin', 'method': 'bicubic'},
                             {'name': 'sharpened', 'type': 'builtin', 'method': 'sharpened'},
                             {'name': 'hr', 'type': 'hr'}],
                  'gap_levels': ['sharpened', 'hr'], 'output': 'datasets/demo/rank_niqe_builtin'}


def demo_config() -> Dict:
    """The demo rank dataset's options with the built-in levels (bicubic, sharpened, HR)."""
    cfg = load_config({**read_yaml(DATASET_OPTIONS), **BUILTIN_LEVELS})
    cfg['hr'], cfg['output'] = (osp.join(REPO_ROOT, cfg[key]) for key in ('hr', 'output'))
    export_skimage_photos(cfg['hr'])
    return cfg


def selection_table(cfg: Dict, stride: int) -> List[str]:
    """Grid, sharp and gap-passing locations per rule, summed over the demo photos (HR as reference)."""
    levels = {opt['name']: build_level(opt, cfg['scale'], 'cpu') for opt in cfg['levels']}
    gap_metrics = {'gray, no shave (original)': {'type': 'niqe', 'crop_border': 0, 'convert_to': 'gray_uint8'},
                   'Y, shave 4 (the labels)': dict(cfg['metric'])}
    gap_metrics = {name: build_patch_metric(opt, 'cpu') for name, opt in gap_metrics.items()}
    totals: Dict[str, int] = {}
    for name in sorted(os.listdir(cfg['hr'])):
        hr = mod_crop(read_image(osp.join(cfg['hr'], name)), cfg['scale'])
        lr = matlab_bicubic(hr, 1 / cfg['scale'])
        srs = {level: fn(lr, hr, name) for level, fn in levels.items()}
        for grid in ('original', 'full'):
            corners = patch_grid(hr.shape[0], hr.shape[1], cfg['patch_size'], stride, grid)
            _add(totals, f'grid {grid}', len(corners))
            for measure in ('original', 'stdfilt3'):
                sharp = sharp_corners(srs[cfg['sharpness_level']], corners, cfg['patch_size'],
                                      cfg['sharpness_threshold'], cfg['sharpness_block'], measure)
                _add(totals, f'grid {grid}, sharpness {measure}', len(sharp))
                if grid != 'original' or measure != 'original' or not sharp:
                    continue
                for metric_name, metric in gap_metrics.items():
                    first, second = (metric(np.stack([crop(srs[lv], c, cfg['patch_size']) for c in sharp]))
                                     for lv in cfg['gap_levels'])
                    _add(totals, f'grid original, sharpness original, gap {metric_name}',
                         int(np.sum(np.abs(first - second) > cfg['min_gap'])))
    return [f'| {rule} | {count} |' for rule, count in totals.items()]


def _add(totals: Dict[str, int], key: str, value: int) -> None:
    totals[key] = totals.get(key, 0) + value


def build_demo_rank_set(cfg: Dict) -> str:
    manifest = osp.join(cfg['output'], 'manifest.json')
    if not (osp.isfile(manifest) and read_yaml(manifest)['options'] == cfg):
        RankDatasetBuilder(cfg, overwrite=True).run()
    return cfg['output']


def train_ranker(variant_index: int, force: Sequence[str], seed: int) -> str:
    name = f'Ranker_demo_fidelity_v{variant_index}_seed{seed}'
    entries = [f'name={name}', f'manual_seed={seed}', f'datasets:train:dataroot={DATAROOT}/train',
               f'datasets:val:dataroot={DATAROOT}/val', *force]
    log = osp.join(REPO_ROOT, 'results', 'fidelity', f'{name}.log')
    os.makedirs(osp.dirname(log), exist_ok=True)
    with open(log, 'w', encoding='utf-8') as f:
        subprocess.run([sys.executable, osp.join(REPO_ROOT, 'basicsr', 'train.py'), '-opt', RANKER_OPTIONS,
                        '--force_yml', *entries], cwd=REPO_ROOT, check=True, stdout=f, stderr=subprocess.STDOUT)
    return osp.join(REPO_ROOT, 'experiments', name, 'models', 'net_r_latest.pth')


def load_demo_ranker(weights: str) -> torch.nn.Module:
    return load_ranker(build_network(dict(read_yaml(RANKER_OPTIONS)['network_r'])), weights)


@torch.no_grad()
def loss_and_batchnorm_rows(weights: str, val_root: str) -> List[str]:
    """Rank-content loss (sum vs mean) and Ranker scores (batch vs running BN) of 8 validation patches."""
    dataset = RankPairDataset({'name': 'fidelity', 'dataroot': val_root, 'phase': 'val'})
    images = torch.stack([dataset[i]['img'][:, :128, :128] for i in range(8)])
    running = freeze_ranker(load_demo_ranker(weights), 'running')(images).reshape(-1)
    batch = freeze_ranker(load_demo_ranker(weights), 'batch')(images).reshape(-1)
    bias = float(running.mean())
    rows = [f'| rank-content loss, sum (original) | {RankContentLoss(bias=bias)(running).item():.4f} |',
            f'| rank-content loss, mean | {RankContentLoss(bias=bias, reduction="mean")(running).item():.4f} |',
            f'| scores, running-statistics BN: mean / std | {running.mean():.3f} / {running.std():.3f} |',
            f'| scores, batch-statistics BN (original): mean / std | {batch.mean():.3f} / {batch.std():.3f} |',
            f'| mean \\|batch - running\\| score | {(batch - running).abs().mean():.3f} |']
    return rows + [f'| Spearman correlation of the two score sets | {calculate_srocc(batch, running):.3f} |']


@torch.no_grad()
def frozen_group_rows(weights: Sequence[str], val_root: str, batches: int = 8) -> List[str]:
    """The frozen Ranker in batch-statistics mode on batches of 8 validation patches: groups of 4 (the original's
    2 replicas, S4) against statistics over all 8: scores, rank-content loss (sum, bias 0) and order."""
    dataset = RankPairDataset({'name': 'fidelity', 'dataroot': val_root, 'phase': 'val'})
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    diffs, losses_grouped, losses_whole, spearman, shift = [], [], [], [], []
    for path in weights:
        whole = freeze_ranker(load_demo_ranker(path), 'batch')
        grouped = use_batchnorm_groups(freeze_ranker(load_demo_ranker(path), 'batch'), 4, 'batchnorm_group')
        for batch in range(min(batches, len(dataset) // 8)):
            indices = order[batch * 8:(batch + 1) * 8].tolist()
            images = torch.stack([dataset[i]['img'][:, :128, :128] for i in indices])
            score_whole, score_grouped = whole(images).reshape(-1), grouped(images).reshape(-1)
            diffs.append(float((score_grouped - score_whole).abs().mean()))
            shift.append(float(score_grouped.mean() - score_whole.mean()))
            losses_grouped.append(float(RankContentLoss()(score_grouped)))
            losses_whole.append(float(RankContentLoss()(score_whole)))
            spearman.append(calculate_srocc(score_grouped, score_whole))
    return [f'| Rankers x batches | {len(weights)} x {len(diffs) // max(len(weights), 1)} |',
            f'| mean \\|groups of 4 - all 8\\| score | {np.mean(diffs):.3f} (std {np.std(diffs):.3f}) |',
            f'| mean score shift, groups of 4 - all 8 | {np.mean(shift):+.3f} |',
            f'| rank-content loss (0.03 x sum, bias 0), groups of 4 (original) | {np.mean(losses_grouped):.4f} |',
            f'| rank-content loss, all 8 | {np.mean(losses_whole):.4f} |',
            f'| Spearman correlation of the two score sets within a batch | {np.mean(spearman):.3f} '
            f'(min {np.min(spearman):.3f}) |']


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--skip-ranker', action='store_true')
    parser.add_argument('--variants', type=int, nargs='+', help='indices of the Ranker trainings to run (default all)')
    parser.add_argument('--batchnorm-groups', action='store_true',
                        help=f'only the BatchNorm-group measurements (S4, R6): trainings {GROUP_VARIANTS} and the '
                        "frozen Ranker's groups of 4 vs 8")
    args = parser.parse_args(argv)
    if args.batchnorm_groups:
        args.variants = list(GROUP_VARIANTS)
    cfg = demo_config()
    for stride in (cfg['stride'], 148):
        print(f'\nLocations on the demo photos (patch {cfg["patch_size"]}, stride {stride}, reference level '
              f'{cfg["sharpness_level"]}, gap {cfg["gap_levels"]} > {cfg["min_gap"]}):')
        print('| rule | locations |\n|---|---|\n' + '\n'.join(selection_table(cfg, stride)))
    if args.skip_ranker:
        return
    val_root = osp.join(build_demo_rank_set(cfg), 'val')
    print(f'\nDemo Ranker ({read_manifest(val_root)["num_keys"]} validation locations), seeds {args.seeds}:')
    print('| Ranker training | SROCC mean | SROCC std | pair accuracy mean |\n|---|---|---|---|')
    last, trained = None, []
    for index, (variant, force) in enumerate(RANKER_VARIANTS.items()):
        if args.variants is not None and index not in args.variants:
            continue
        weights = [train_ranker(index, force, seed) for seed in args.seeds]
        trained += weights
        last = weights[-1]
        results = [evaluate_ranker(load_demo_ranker(path), val_root) for path in weights]
        srocc = [r['srocc'] for r in results]
        print(f'| {variant} | {np.mean(srocc):.4f} | {np.std(srocc):.4f} | '
              f'{np.mean([r["pair_accuracy"] for r in results]):.4f} |')
    if args.batchnorm_groups:
        print("\nThe frozen Ranker (batch-statistics BatchNorm) on batches of 8 validation patches (128x128), every "
              'Ranker trained above:')
        print('| quantity | value |\n|---|---|\n' + '\n'.join(frozen_group_rows(trained, val_root)))
        return
    print('\nOne batch of 8 validation patches (128x128) through the last Ranker, rank-content bias = mean score:')
    print('| quantity | value |\n|---|---|\n' + '\n'.join(loss_and_batchnorm_rows(last, val_root)))


if __name__ == '__main__':
    main()
