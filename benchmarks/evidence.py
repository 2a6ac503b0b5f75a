"""Longer multi-seed evidence on the demo's photos: SRGAN against RankSRGAN (mean and the original's sum).

    python benchmarks/evidence.py [--seeds 0 1 2] [--iters 600] [--every 100]

Needs the demo's photos and initial generator (``make demo`` first). For each seed, as ``make demo`` does
but longer: SRGAN from the initial generator (GAN + L1; checkpoints every ``--every`` iterations); the rank
set (levels: initial, SRGAN at iteration 100 - the demo's SRGAN -, HR; NIQE labels) and the demo Ranker on
it; then RankSRGAN from the same start, seed, data and iterations with the frozen Ranker's rank-content loss,
once with the demo's ``reduction: mean`` and once with the original code's ``sum`` (8x stronger at batch 8).
Every checkpoint (and the initial generator, iteration 0) is measured on the 3 held-out photos: PSNR and NIQE
(Y, 4-pixel shave), the seed's Ranker's mean score of the outputs' 128-px tiles and the share of tiles whose
output the Ranker scores better than the HR tile by more than its margin (0.5); the RankSRGAN runs' training
logs give the Ranker-exploitation monitor's ``out_beats_gt`` and its warnings.

Writes results/evidence/: evidence.json (every curve, the final table, the paired per-seed differences against
SRGAN), curves.png (mean over seeds, each seed thin) and crops.png (the same detailed crop of each held-out
photo for every run at the last iteration, seed ``--seeds[0]``). Runs that finished are kept (a rerun after a
kill continues with the next one); ``--fresh`` retrains everything. About 30 minutes per seed on 2 CPU cores.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import ranksrgan_plugin  # noqa: F401  (compat fixes first)

# isort: split
import cv2
import torch

from ranksrgan_plugin import demo
from ranksrgan_plugin.utils.options import write_options
from ranksrgan_plugin.utils.training_logs import ranker_monitor_log
from ranksrgan_plugin.utils.upscaler import default_device

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
OUT = osp.join(ROOT, 'results', 'evidence')
OPTIONS = osp.join(ROOT, 'options')
VAL = osp.join(ROOT, 'datasets', 'demo', 'sr', 'val')
TRAIN_LQ = osp.join(ROOT, 'datasets', 'demo', 'sr', 'train', 'lq')
INITIAL = osp.join(ROOT, 'experiments', 'SRResNet_demo', 'models', 'net_g_latest.pth')
RUNS = {'srgan': 'SRGAN', 'mean': 'RankSRGAN (mean, the demo)', 'sum': "RankSRGAN (sum, the original's)"}
MARGIN = 0.5
TILE = 128


def train(options: Dict[str, Any], values: Dict[str, Any], name: str, fresh: bool, net: str = 'g') -> Tuple[str, bool]:
    """(experiment folder, whether it trained now) of a BasicSR run of ``options`` with ``values`` set, named
    ``name``; a finished run (its last checkpoint on disk, same options) is kept unless ``fresh``."""
    path = osp.join(OUT, 'options', f'{name}.yml')
    previous = open(path, encoding='utf-8').read() if osp.isfile(path) else None
    write_options(options, {**values, 'name': name}, path, f'benchmarks/evidence.py: {name}')
    experiment = osp.join(ROOT, 'experiments', name)
    last = osp.join(experiment, 'models', f'net_{net}_{values["train.total_iter"]}.pth')
    if not fresh and osp.isfile(last) and previous == open(path, encoding='utf-8').read():
        print(f'  {name}: done before, kept', flush=True)
        return experiment, False
    return demo.train_with_basicsr(path, ROOT, f'  {name}', osp.join(OUT, 'logs')), True


def gan_options(every: int) -> Dict[str, Any]:
    """The demo's GAN options, measured from checkpoints instead of in-training validation."""
    options = demo.read_yaml(osp.join(OPTIONS, 'train_RankSRGAN_demo.yml'))
    options.pop('val')
    options['logger'].update(print_freq=20, save_checkpoint_freq=every)
    return options


def ranker_for_seed(seed: int, srgan: str, every: int, fresh: bool) -> Tuple[str, bool]:
    """(weights, whether trained now) of the seed's demo Ranker: the demo's rank set (levels initial, SRGAN at
    iteration ``every``, HR), trained. ``fresh``: the SRGAN run changed, so the rank set is rebuilt."""
    cfg = demo.read_yaml(osp.join(OPTIONS, 'rank_dataset_demo.yml'))
    weights = {'initial': INITIAL, 'srgan': osp.join(srgan, 'models', f'net_g_{every}.pth')}
    cfg['levels'] = [{**level, 'weights': weights[level['name']]} if level['name'] in weights else level
                     for level in cfg['levels']]
    rank_set = osp.join(ROOT, 'datasets', 'demo', f'rank_niqe_evidence_s{seed}')
    if fresh or not osp.isfile(osp.join(rank_set, 'val', 'manifest.json')):
        cfg.update(hr=osp.join(ROOT, 'datasets', 'demo', 'hr'), output=rank_set)
        demo.build_rank_dataset(cfg, progress=True)
    ranker = demo.read_yaml(osp.join(OPTIONS, 'train_Ranker_demo.yml'))
    run, trained = train(ranker, {'manual_seed': seed, 'datasets.train.dataroot': osp.join(rank_set, 'train'),
                         'datasets.val.dataroot': osp.join(rank_set, 'val'), 'train.total_iter':
                         ranker['train']['total_iter']}, f'Evidence_Ranker_s{seed}', fresh, net='r')
    return osp.join(run, 'models', 'net_r_latest.pth'), trained


def measure_checkpoints(checkpoints: Dict[int, str], ranker: torch.nn.Module, hr: demo.Images,
                        hr_scores: np.ndarray) -> List[dict]:
    """PSNR, NIQE, Ranker score and the share of tiles beating HR by the margin, per checkpoint."""
    gan_file = osp.join(OPTIONS, 'train_RankSRGAN_demo.yml')
    curve = []
    for iteration, weights in sorted(checkpoints.items()):
        srs = demo.upscale_photos(demo.generator_upscalers({'run': (gan_file, weights)}), osp.join(VAL, 'lq'))['run']
        tiles = np.asarray(demo.ranker_scores(ranker, srs, TILE))
        curve.append({'iter': iteration, **demo.fidelity_scores(srs, hr), 'ranker_score': float(tiles.mean()),
                      'heldout_beats_hr': float(np.mean(hr_scores - tiles > MARGIN))})
    return curve


def run_seed(seed: int, iters: int, every: int, fresh: bool) -> Dict[str, Any]:
    """Train the seed's three runs and its Ranker; measure every checkpoint."""
    options = gan_options(every)
    start = {'path.pretrain_network_g': INITIAL, 'manual_seed': seed, 'train.total_iter': iters}
    print(f'seed {seed}: SRGAN, {iters} iterations', flush=True)
    srgan, fresh = train(options, {**start, 'model_type': 'SRGANModel'}, f'Evidence_SRGAN_s{seed}', fresh)
    experiments = {'srgan': srgan}
    print(f'seed {seed}: rank set and Ranker', flush=True)
    ranker_weights, fresh = ranker_for_seed(seed, srgan, every, fresh)  # a new SRGAN run: new rank set, Ranker
    ranker_file = osp.join(OUT, 'options', f'Evidence_Ranker_s{seed}.yml')
    device = default_device()
    net_r = demo.load_network(ranker_file, 'network_r', ranker_weights, device)
    initial = demo.upscale_photos(demo.generator_upscalers({'i': (osp.join(OPTIONS, 'train_SRResNet_demo.yml'),
                                                                        INITIAL)}), TRAIN_LQ)['i']
    bias = round(float(np.mean(demo.ranker_scores(net_r, initial))), 4)
    for run, reduction in (('mean', 'mean'), ('sum', 'sum')):
        print(f'seed {seed}: RankSRGAN, reduction {reduction}', flush=True)
        experiments[run], _ = train(options, {**start, 'path.pretrain_network_r': ranker_weights,
                                           'train.rank_opt.bias': bias, 'train.rank_opt.reduction': reduction},
                                 f'Evidence_RankSRGAN_{run}_s{seed}', fresh)
    print(f'seed {seed}: measuring every checkpoint on the held-out photos', flush=True)
    hr = {name: cv2.imread(osp.join(VAL, 'gt', name)) for name in sorted(os.listdir(osp.join(VAL, 'gt')))}
    hr_scores = np.asarray(demo.ranker_scores(net_r, hr, TILE))
    result = {'rank_content_bias': bias, 'ranker': ranker_weights, 'hr_ranker_score': float(hr_scores.mean()),
              'hr_niqe': float(np.mean(list(demo.per_image_niqe(hr).values()))), 'runs': {}}
    for run, experiment in experiments.items():
        checkpoints = {0: INITIAL, **{it: osp.join(experiment, 'models', f'net_g_{it}.pth')
                                      for it in range(every, iters + 1, every)}}
        result['runs'][run] = {'experiment': osp.relpath(experiment, ROOT),
                               'curve': measure_checkpoints(checkpoints, net_r, hr, hr_scores)}
        if run != 'srgan':
            result['runs'][run]['monitor'] = ranker_monitor_log(experiment)
    return result


def paired_differences(per_seed: Dict[int, Dict[str, Any]], first: int, last: int) -> Dict[str, Dict[str, Any]]:
    """Per RankSRGAN run and metric: the per-seed differences against SRGAN of the metric averaged over the
    checkpoints of iterations ``first``-``last`` (one checkpoint when equal), their mean and std."""
    def window(run: Dict[str, Any], metric: str) -> float:
        return float(np.mean([p[metric] for p in run['curve'] if first <= p['iter'] <= last]))

    table: Dict[str, Dict[str, Any]] = {}
    for run in ('mean', 'sum'):
        table[run] = {}
        for metric in ('niqe', 'psnr', 'ranker_score'):
            values = [window(seed['runs'][run], metric) - window(seed['runs']['srgan'], metric)
                      for seed in per_seed.values()]
            table[run][metric] = {'per_seed': values, 'mean': float(np.mean(values)),
                                  'std': float(np.std(values, ddof=1)) if len(values) > 1 else None}
    return table


def final_table(per_seed: Dict[int, Dict[str, Any]], iteration: int) -> Dict[str, Dict[str, float]]:
    rows = {}
    for run in RUNS:
        points = [next(p for p in seed['runs'][run]['curve'] if p['iter'] == iteration) for seed in per_seed.values()]
        row = {}
        for key in ('psnr', 'niqe', 'ranker_score', 'heldout_beats_hr'):
            values = [p[key] for p in points]
            row[key], row[f'{key}_std'] = float(np.mean(values)), float(np.std(values, ddof=1) if len(values) > 1
                                                                          else 0.0)
        if run != 'srgan':
            shares = [np.mean([p['out_beats_gt'] for p in seed['runs'][run]['monitor']['points']] or [np.nan])
                      for seed in per_seed.values()]
            row['monitor_share'] = float(np.mean(shares))
            row['monitor_warnings'] = float(np.mean([len(seed['runs'][run]['monitor']['warnings'])
                                                     for seed in per_seed.values()]))
        rows[RUNS[run]] = row
    return rows


def markdown(results: Dict[str, Any]) -> str:
    it, seeds = results['iters'], results['seeds']
    lines = [f'Held-out photos at iteration {it}, mean +- std over seeds {seeds}:', '',
             '| run | PSNR (dB) | NIQE | Ranker score | held-out tiles beating HR | monitor: out_beats_gt (mean) '
             '| monitor warnings per run |', '|---|---|---|---|---|---|---|']
    for run, row in results['final'].items():
        cells = [f'{row[k]:.3f} +- {row[k + "_std"]:.3f}' for k in ('psnr', 'niqe', 'ranker_score')]
        cells.append(f'{row["heldout_beats_hr"]:.0%}')
        cells += [f'{row["monitor_share"]:.0%}', f'{row["monitor_warnings"]:.1f}'] if 'monitor_share' in row else \
            ['-', '-']
        lines.append(f'| {run} | ' + ' | '.join(cells) + ' |')
    hr = [(seed['hr_niqe'], seed['hr_ranker_score']) for seed in results['per_seed'].values()]
    lines.append(f'| HR | - | {np.mean([h[0] for h in hr]):.3f} | {np.mean([h[1] for h in hr]):.3f} | - | - | - |')
    for key, label in (('paired', f'at iteration {it}'), ('paired_second_half', f'averaged over the checkpoints of '
                                                                                   f'iterations {it // 2}-{it}')):
        lines += ['', f'Paired differences against SRGAN, {label} (same seed; per seed, then mean +- std):', '',
                  '| run | NIQE | PSNR (dB) | Ranker score |', '|---|---|---|---|']
        for run, metrics in results[key].items():
            cells = []
            for metric in ('niqe', 'psnr', 'ranker_score'):
                d = metrics[metric]
                spread = '' if d['std'] is None else f' +- {d["std"]:.3f}'
                cells.append(', '.join(f'{v:+.3f}' for v in d['per_seed']) + f' (mean {d["mean"]:+.3f}{spread})')
            lines.append(f'| {RUNS[run]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot_curves(results: Dict[str, Any], output: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    panels = (('niqe', 'NIQE (lower = better)'), ('psnr', 'PSNR (dB)'), ('ranker_score', 'Ranker score (lower = '
              'better)'), ('heldout_beats_hr', 'share of tiles the Ranker prefers to HR'))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (key, label) in zip(axes, panels):
        for color, run in zip(('tab:gray', 'tab:blue', 'tab:red'), RUNS):
            curves = [[(p['iter'], p[key]) for p in seed['runs'][run]['curve']]
                      for seed in results['per_seed'].values()]
            for curve in curves:
                ax.plot(*zip(*curve), color=color, alpha=0.3, linewidth=0.8)
            its = [p[0] for p in curves[0]]
            ax.plot(its, np.mean([[v for _, v in c] for c in curves], axis=0), color=color, marker='o', markersize=3,
                    label=RUNS[run])
        if key == 'ranker_score':
            ax.axhline(np.mean([s['hr_ranker_score'] for s in results['per_seed'].values()]), color='k',
                       linestyle=':', label='HR')
        ax.set_xlabel('iteration'), ax.set_title(label, fontsize=10), ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f'held-out photos; mean over seeds {results["seeds"]} (thin: each seed)')
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def plot_crops(results: Dict[str, Any], output: str) -> None:
    seed = results['seeds'][0]
    gan_file = osp.join(OPTIONS, 'train_RankSRGAN_demo.yml')
    runs = (results['per_seed'].get(seed) or results['per_seed'][str(seed)])['runs']  # str keys from JSON
    sources = {'initial': (osp.join(OPTIONS, 'train_SRResNet_demo.yml'), INITIAL),
               **{RUNS[run]: (gan_file, osp.join(ROOT, runs[run]['experiment'], 'models',
                                                 f'net_g_{results["iters"]}.pth')) for run in RUNS}}
    srs = demo.upscale_photos(demo.generator_upscalers(sources), osp.join(VAL, 'lq'))
    hr = {name: cv2.imread(osp.join(VAL, 'gt', name)) for name in srs['initial']}
    demo.plot_comparison(srs, hr, output)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='SRGAN vs RankSRGAN (mean, sum), longer, several seeds.')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--every', type=int, default=100, help='checkpoint (and measurement) period')
    parser.add_argument('--fresh', action='store_true', help='retrain runs that finished before')
    parser.add_argument('--report', action='store_true', help='only the tables and figures, from evidence.json')
    args = parser.parse_args(argv)
    if args.report:
        with open(osp.join(OUT, 'evidence.json'), encoding='utf-8') as f:
            return report(json.load(f))
    if not osp.isfile(INITIAL) or not osp.isdir(VAL):
        sys.exit(f'{INITIAL} or {VAL} is missing: run `make demo` first (the photos and the initial generator).')
    if args.iters % args.every:
        sys.exit('--iters must be a multiple of --every.')
    os.makedirs(OUT, exist_ok=True)
    per_seed = {seed: run_seed(seed, args.iters, args.every, args.fresh) for seed in args.seeds}
    report({'seeds': args.seeds, 'iters': args.iters, 'every': args.every, 'margin': MARGIN, 'per_seed': per_seed})


def report(results: Dict[str, Any]) -> None:
    """The tables (printed, evidence.md), evidence.json and the figures of measured runs."""
    per_seed, iters = results['per_seed'], results['iters']
    results['final'] = final_table(per_seed, iters)
    results['paired'] = paired_differences(per_seed, iters, iters)
    results['paired_second_half'] = paired_differences(per_seed, iters // 2, iters)
    text = markdown(results)
    print(text)
    with open(osp.join(OUT, 'evidence.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(OUT, 'evidence.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    plot_curves(results, osp.join(OUT, 'curves.png'))
    plot_crops(results, osp.join(OUT, 'crops.png'))
    print(f'Written: {osp.relpath(OUT, ROOT)}/ (evidence.json, evidence.md, curves.png, crops.png)')


if __name__ == '__main__':
    main()
