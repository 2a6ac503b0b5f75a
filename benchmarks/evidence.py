"""The method's causal chain at CPU scale: Rankers of three qualities, then RankSRGAN against SRGAN (issue 34).

    python benchmarks/evidence.py [--seeds 0 1 2] [--iters 200] [--every 50] [--qualities high mid low]
        [--reductions sum mean] [--report]

Needs ``make demo`` first (its photos and initial generator). Steps, each kept when it finished before (a rerun
after a kill goes on with the next; ``--fresh`` retrains):

1. Rankers of three qualities (``benchmarks/ranker_quality.py``: the rank set of ``options/rank_dataset_evidence.yml``
   on the Ranker's photos, ``options/train_Ranker_evidence.yml``; :data:`QUALITIES`: pairs across 4 or 8 locations,
   or the paper's pairs of one location, and the iterations), each with its SROCC on patches of the held-out
   photos;
2. per seed, SRGAN from the demo's initial generator on the demo's training photos (``train_RankSRGAN_demo.yml``
   as ``SRGANModel``), and RankSRGAN from the same start, seed, data and iterations with each Ranker frozen, under
   the original code's ``sum`` and the demo's ``mean`` reduction of the rank-content loss;
3. every checkpoint (``--every``; iteration 0 is the initial generator) on the held-out photos, which neither the
   Rankers nor the generators trained on: per 192 px tile with content (NIQE over its 2 x 2 blocks of 96 px, no
   shave, as the tiles are cut from whole SR photos; PSNR with a 4-pixel shave; both Y), and the run's own
   Ranker's score; the last checkpoint also on the whole held-out photos (NIQE and PSNR with a 4-pixel shave, as
   the paper measures test images).

Writes results/evidence/chain/: chain.json (every reading), chain.md (the tables: per Ranker quality, the paired
NIQE / PSNR difference against SRGAN with its 95% interval over seeds, the monitor's readings), curves.png and
crops.png. ``--report`` re-renders them from chain.json. Runs of another length than 200 iterations are named
``Chain_..._i<iters>_s<seed>`` and reported in ``chain_i<iters>.*``.
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
from basicsr.metrics import calculate_psnr
from basicsr.utils import img2tensor
from scipy import stats

from ranksrgan_plugin import demo
from ranksrgan_plugin.evidence_photos import MIN_TILE_STD
from ranksrgan_plugin.metrics.niqe_batch import calculate_niqe_batched
from ranksrgan_plugin.rank_dataset.levels import matlab_bicubic
from ranksrgan_plugin.utils.training_logs import ranker_monitor_log

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import ranker_quality  # noqa: E402  (the Rankers: benchmarks/ranker_quality.py)

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
OUT = osp.join(ROOT, 'results', 'evidence', 'chain')
OPTIONS = osp.join(ROOT, 'options')
HELDOUT_HR = osp.join(ROOT, 'datasets', 'evidence_photos', 'heldout', 'hr')
INITIAL = osp.join(ROOT, 'experiments', 'SRResNet_demo', 'models', 'net_g_latest.pth')
GAN_OPTIONS = osp.join(OPTIONS, 'train_RankSRGAN_demo.yml')
RANKER_RECORDS = osp.join(ROOT, 'results', 'evidence', 'ranker_quality.jsonl')
TRAIN_LQ = osp.join(ROOT, 'datasets', 'demo', 'sr', 'train', 'lq')
DEFAULT_ITERS = 200  # runs of other lengths are named (and reported) apart: Chain_..._i<iters>_s<seed>
TILE = 192  # NIQE over 2 x 2 blocks of 96 px (no shave: tiles are cut from whole SR photos); PSNR shaves 4
# Ranker qualities (benchmarks/ranker_quality.py runs, seed 0): tag, iterations, locations per key (0: the paper's
# pairs, two levels of one location), label noise
QUALITIES: Dict[str, Dict[str, Any]] = {
    'high': {'tag': 'mix4_i1200', 'iters': 1200, 'mix': 4, 'noise': 0.0, 'reductions': ('sum', 'mean')},
    'mid': {'tag': 'mix8_i600', 'iters': 600, 'mix': 8, 'noise': 0.0, 'reductions': ('sum',)},
    'low': {'tag': 'all9_i200', 'iters': 200, 'mix': 0, 'noise': 0.0, 'reductions': ('sum',)},
}  # the demo's mean reduction for the best Ranker only: 2 CPU cores
REDUCTIONS = {'sum': "sum (the original's)", 'mean': 'mean (the demo)'}


# -- 1. the Rankers ------------------------------------------------------------------------------------------
def train_rankers(qualities: Sequence[str], seed: int = 0) -> Dict[str, Dict[str, Any]]:
    """{quality: {weights, options, srocc, pair_accuracy, ...}}: a finished ranker_quality run is read back (its
    held-out SROCC from results/evidence/ranker_quality.jsonl), a missing one trained and measured."""
    recorded = {}
    if osp.isfile(RANKER_RECORDS):
        with open(RANKER_RECORDS, encoding='utf-8') as f:
            recorded = {(r['tag'], r['seed']): r for r in map(json.loads, f)}
    rankers = {}
    for quality in qualities:
        spec = QUALITIES[quality]
        name = f'Ranker_evidence_{spec["tag"]}_s{seed}'
        weights = osp.join(ROOT, 'experiments', name, 'models', f'net_r_{spec["iters"]}.pth')
        result = recorded.get((spec['tag'], seed))
        if result is None or not osp.isfile(weights):
            result = ranker_quality.train_and_measure(ranker_quality.build_rank_sets(), seed, spec['iters'],
                                                      spec['noise'], None, spec['mix'], {}, spec['tag'])
        rankers[quality] = {**spec, 'weights': weights, 'srocc': result['srocc'],
                            'pair_accuracy': result['pair_accuracy'], 'patches': result['patches'],
                            'options': osp.join(ranker_quality.OUT, 'options', f'{name}.yml')}
        print(f'Ranker {quality} ({spec["tag"]}): held-out SROCC {result["srocc"]:.3f}', flush=True)
    return rankers


# -- 2. the generators ---------------------------------------------------------------------------------------
def train(values: Dict[str, Any], name: str, fresh: bool) -> str:
    """The experiment folder of a BasicSR run of the demo's GAN options with ``values`` set, named ``name``; a
    finished run (its last checkpoint on disk, same options) is kept unless ``fresh``."""
    options = demo.read_yaml(GAN_OPTIONS)
    options.pop('val')
    experiment, _ = ranker_quality.train_or_keep(options, {**values, 'name': name},
                                                 osp.join(OUT, 'options', f'{name}.yml'),
                                                 f'net_g_{values["train.total_iter"]}.pth', 'benchmarks/evidence.py',
                                                 fresh)
    return experiment


def rank_content_bias(ranker: torch.nn.Module, initial_outputs: demo.Images) -> float:
    """The Ranker's mean score of the initial generator's outputs of the training photos (the demo's bias)."""
    return round(float(np.mean(demo.ranker_scores(ranker, initial_outputs))), 4)


def train_seed(seed: int, rankers: Dict[str, Dict[str, Any]], reductions: Sequence[str], iters: int, every: int,
               fresh: bool) -> Dict[str, str]:
    """{run: experiment} of one seed: SRGAN, then RankSRGAN per Ranker quality and reduction."""
    start = {'path.pretrain_network_g': INITIAL, 'manual_seed': seed, 'train.total_iter': iters,
             'logger.save_checkpoint_freq': every, 'logger.print_freq': 20}
    length = '' if iters == DEFAULT_ITERS else f'_i{iters}'
    print(f'seed {seed}: SRGAN, {iters} iterations', flush=True)
    runs = {'srgan': train({**start, 'model_type': 'SRGANModel'}, f'Chain_SRGAN{length}_s{seed}', fresh)}
    initial = demo.upscale_photos(demo.generator_upscalers({'i': (osp.join(OPTIONS, 'train_SRResNet_demo.yml'),
                                                                    INITIAL)}), TRAIN_LQ)['i']
    for quality, ranker in rankers.items():
        network_r = demo.read_yaml(ranker['options'])['network_r']
        bias = rank_content_bias(demo.load_network(ranker['options'], 'network_r', ranker['weights']), initial)
        for reduction in [r for r in reductions if r in ranker['reductions']]:
            print(f'seed {seed}: RankSRGAN, Ranker {quality}, {reduction}', flush=True)
            runs[f'{quality}_{reduction}'] = train(
                {**start, 'network_r': network_r, 'path.pretrain_network_r': ranker['weights'],
                 'train.rank_opt.bias': bias, 'train.rank_opt.reduction': reduction},
                f'Chain_RankSRGAN_{quality}_{reduction}{length}_s{seed}', fresh)
    return runs


# -- 3. the measurements -------------------------------------------------------------------------------------
def held_out() -> Tuple[Dict[str, np.ndarray], str, List[Tuple[str, int, int]]]:
    """(HR photos mod-cropped to 4, their x4 MATLAB-bicubic LR folder, the content tiles: (photo, top, left))."""
    lq_folder = osp.join(OUT, 'heldout_lq_x4')
    os.makedirs(lq_folder, exist_ok=True)
    hrs, tiles = {}, []
    for name in sorted(os.listdir(HELDOUT_HR)):
        hr = cv2.imread(osp.join(HELDOUT_HR, name))
        hr = hr[:hr.shape[0] // 4 * 4, :hr.shape[1] // 4 * 4]
        hrs[name] = hr
        if not osp.isfile(osp.join(lq_folder, name)):
            cv2.imwrite(osp.join(lq_folder, name), matlab_bicubic(hr, 0.25))
        gray = cv2.cvtColor(hr, cv2.COLOR_BGR2GRAY)
        tiles += [(name, top, left) for top in range(0, hr.shape[0] - TILE + 1, TILE)
                  for left in range(0, hr.shape[1] - TILE + 1, TILE)
                  if gray[top:top + TILE, left:left + TILE].std() >= MIN_TILE_STD]
    return hrs, lq_folder, tiles


@torch.no_grad()
def measure(weights: str, ranker: Optional[torch.nn.Module], hrs: Dict[str, np.ndarray], lq_folder: str,
            tiles: List[Tuple[str, int, int]], cache: str) -> Dict[str, List[float]]:
    """Per tile: NIQE (Y, no shave), PSNR (Y, 4-pixel shave) and the Ranker's score of ``weights``'s output."""
    return cached(cache, lambda: measure_tiles(weights, ranker, hrs, lq_folder, tiles))


def measure_tiles(weights: str, ranker: Optional[torch.nn.Module], hrs: Dict[str, np.ndarray], lq_folder: str,
                  tiles: List[Tuple[str, int, int]]) -> Dict[str, List[float]]:
    srs = demo.upscale_photos(demo.generator_upscalers({'g': (GAN_OPTIONS, weights)}), lq_folder)['g']
    crops = [(srs[name][top:top + TILE, left:left + TILE], hrs[name][top:top + TILE, left:left + TILE])
             for name, top, left in tiles]
    result = {'niqe': [float(calculate_niqe_batched(sr, crop_border=0)) for sr, _ in crops],
              'psnr': [float(calculate_psnr(sr, hr, crop_border=4, test_y_channel=True)) for sr, hr in crops]}
    if ranker is not None:
        batch = torch.stack([img2tensor(sr.astype(np.float32) / 255.0, bgr2rgb=True) for sr, _ in crops])
        result['ranker_score'] = ranker(batch.to(next(ranker.parameters()).device)).reshape(-1).tolist()
    return result


def cached(cache: str, compute: Any) -> Dict[str, Any]:
    """The JSON in ``cache``, or ``compute()``'s result written there."""
    if osp.isfile(cache):
        with open(cache, encoding='utf-8') as f:
            return json.load(f)
    result = compute()
    os.makedirs(osp.dirname(cache), exist_ok=True)
    with open(cache, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    return result


@torch.no_grad()
def measure_whole(weights: str, hrs: Dict[str, np.ndarray], lq_folder: str, cache: str) -> Dict[str, List[float]]:
    """Per held-out photo, as the paper measures test images: NIQE and PSNR (Y, 4-pixel shave) of the whole SR
    output of ``weights``."""
    def compute() -> Dict[str, List[float]]:
        srs = demo.upscale_photos(demo.generator_upscalers({'g': (GAN_OPTIONS, weights)}), lq_folder)['g']
        niqe = demo.per_image_niqe(srs)
        return {'photos': sorted(hrs), 'niqe': [niqe[name] for name in sorted(hrs)],
                'psnr': [float(calculate_psnr(srs[name], hrs[name], crop_border=4, test_y_channel=True))
                         for name in sorted(hrs)]}

    return cached(cache, compute)


def measure_seed(runs: Dict[str, str], rankers: Dict[str, Dict[str, Any]], iters: int, every: int,
                 seed: int) -> Dict[str, Any]:
    """Every checkpoint of every run of one seed, per tile; the RankSRGAN runs' monitor readings."""
    hrs, lq_folder, tiles = held_out()
    nets = {quality: demo.load_network(r['options'], 'network_r', r['weights']) for quality, r in rankers.items()}
    result: Dict[str, Any] = {'tiles': [list(t) for t in tiles], 'runs': {}}
    for run, experiment in runs.items():
        ranker = nets.get(run.split('_')[0])
        checkpoints = {0: INITIAL, **{it: osp.join(experiment, 'models', f'net_g_{it}.pth')
                                      for it in range(every, iters + 1, every)}}
        cache = osp.join(OUT, 'measurements', osp.basename(experiment) + '_{}_{}.json')  # a retrained file: anew
        curve = {str(it): measure(weights, ranker, hrs, lq_folder, tiles, cache.format(it, int(osp.getmtime(weights))))
                 for it, weights in checkpoints.items()}
        result['runs'][run] = {'experiment': osp.relpath(experiment, ROOT), 'curve': curve,
                               'whole': measure_whole(checkpoints[iters], hrs, lq_folder, cache.format(
                                   f'{iters}_whole', int(osp.getmtime(checkpoints[iters]))))}
        if run != 'srgan':
            result['runs'][run]['monitor'] = ranker_monitor_log(experiment)
    print(f'seed {seed}: measured {len(runs)} runs on {len(tiles)} held-out tiles', flush=True)
    return result


# -- the report ----------------------------------------------------------------------------------------------
def interval(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and 95% t-interval of per-seed values (None bounds for a single seed)."""
    values = [float(v) for v in values]
    mean = float(np.mean(values))
    if len(values) < 2:
        return {'per_seed': values, 'mean': mean, 'low': None, 'high': None}
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return {'per_seed': values, 'mean': mean, 'low': mean - half, 'high': mean + half}


def window_mean(run: Dict[str, Any], metric: str, first: int, last: int) -> np.ndarray:
    """Per tile, the metric averaged over the checkpoints of iterations ``first``-``last``."""
    points = [np.asarray(values[metric]) for it, values in run['curve'].items() if first <= int(it) <= last]
    return np.mean(points, axis=0)


def paired(results: Dict[str, Any], run: str, metric: str, first: int, last: int) -> Dict[str, Any]:
    """RankSRGAN ``run`` minus SRGAN, same seed and tiles: the per-seed mean over tiles, with its 95% interval."""
    per_seed = [float(np.mean(window_mean(seed['runs'][run], metric, first, last)
                              - window_mean(seed['runs']['srgan'], metric, first, last)))
                for seed in results['per_seed'].values()]
    return interval(per_seed)


def paired_whole(results: Dict[str, Any], run: str, metric: str) -> Optional[Dict[str, Any]]:
    """As :func:`paired`, on the whole held-out photos at the last checkpoint (None: not measured)."""
    seeds = list(results['per_seed'].values())
    if any('whole' not in seed['runs'][run] for seed in seeds):
        return None
    return interval([float(np.mean(np.subtract(seed['runs'][run]['whole'][metric],
                                               seed['runs']['srgan']['whole'][metric]))) for seed in seeds])


def tiles_lower(results: Dict[str, Any], run: str, metric: str, iteration: int) -> float:
    """The share of (seed, tile) pairs where ``run``'s ``metric`` at ``iteration`` is below SRGAN's."""
    below = [np.asarray(seed['runs'][run]['curve'][str(iteration)][metric])
             < np.asarray(seed['runs']['srgan']['curve'][str(iteration)][metric])
             for seed in results['per_seed'].values()]
    return float(np.mean(np.concatenate(below)))


def monitor_share(results: Dict[str, Any], run: str) -> Optional[float]:
    shares = [np.mean([p['out_beats_gt'] for p in seed['runs'][run]['monitor']['points']])
              for seed in results['per_seed'].values() if seed['runs'][run]['monitor']['points']]
    return float(np.mean(shares)) if shares else None


def final_mean(results: Dict[str, Any], run: str, metric: str, iteration: Optional[int] = None) -> float:
    """The metric of ``run`` at ``iteration`` (default: the last), mean over tiles and seeds."""
    it = str(results['iters'] if iteration is None else iteration)
    return float(np.mean([np.mean(seed['runs'][run]['curve'][it][metric]) for seed in results['per_seed'].values()]))


def fmt(d: Dict[str, Any], digits: int = 3) -> str:
    if d['low'] is None:
        return f'{d["mean"]:+.{digits}f}'
    return f'{d["mean"]:+.{digits}f} [{d["low"]:+.{digits}f}, {d["high"]:+.{digits}f}]'


def fmt_or_dash(d: Optional[Dict[str, Any]]) -> str:
    return '-' if d is None else fmt(d)


def markdown(results: Dict[str, Any]) -> str:
    it, seeds, rankers = results['iters'], results['seeds'], results['rankers']
    any_seed = next(iter(results['per_seed'].values()))
    lines = [f'{len(any_seed["tiles"])} held-out tiles of {TILE} px ({len(set(t[0] for t in any_seed["tiles"]))} '
             f'photos), seeds {seeds}, {it} iterations; RankSRGAN minus SRGAN from the same start, seed and data: '
             'mean over seeds of the per-seed mean over tiles, [95% interval over seeds] (t, n - 1 degrees of '
             'freedom). NIQE: lower is better.', '',
             '| Ranker (held-out SROCC) | rank-content loss | NIQE at the end | NIQE, 2nd half | tiles with lower NIQE '
             '| NIQE of the whole photos at the end | PSNR (dB) at the end | own Ranker score at the end '
             '| monitor: out_beats_gt |', '|---|---|---|---|---|---|---|---|---|']
    for quality, ranker in rankers.items():
        for reduction in [r for r in results['reductions'] if f'{quality}_{r}' in any_seed['runs']]:
            run = f'{quality}_{reduction}'
            share = monitor_share(results, run)
            cells = [fmt(paired(results, run, 'niqe', it, it)), fmt(paired(results, run, 'niqe', it // 2, it)),
                     f'{tiles_lower(results, run, "niqe", it):.0%}', fmt_or_dash(paired_whole(results, run, 'niqe')),
                     fmt(paired(results, run, 'psnr', it, it), 2),
                     f'{final_mean(results, run, "ranker_score"):.3f}',
                     '-' if share is None else f'{share:.0%}']
            lines.append(f'| {quality} ({ranker["srocc"]:.2f}) | {REDUCTIONS[reduction]} | ' + ' | '.join(cells)
                         + ' |')
    lines += ['', f'SRGAN at iteration {it}: NIQE {final_mean(results, "srgan", "niqe"):.3f}, PSNR '
              f'{final_mean(results, "srgan", "psnr"):.2f} dB (the initial generator: NIQE '
              f'{final_mean(results, "srgan", "niqe", 0):.3f}, PSNR {final_mean(results, "srgan", "psnr", 0):.2f} dB).']
    if all('whole' in seed['runs']['srgan'] for seed in results['per_seed'].values()):
        whole = np.mean([seed['runs']['srgan']['whole']['niqe'] for seed in results['per_seed'].values()])
        photos = len(any_seed['runs']['srgan']['whole']['photos'])
        lines += ['', f'Whole photos: NIQE with a 4-pixel shave of each whole SR output of the {photos} '
                  f'held-out photos, as the paper measures test images; SRGAN at iteration {it}: {whole:.3f}.']
    return '\n'.join(lines) + '\n'


def plot_curves(results: Dict[str, Any], output: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    runs = list(next(iter(results['per_seed'].values()))['runs'])
    for ax, metric in zip(axes, ('niqe', 'psnr')):
        for run in runs:
            seeds = list(results['per_seed'].values())
            its = sorted(int(i) for i in seeds[0]['runs'][run]['curve'])
            values = [np.mean([np.mean(s['runs'][run]['curve'][str(i)][metric]) for s in seeds]) for i in its]
            ax.plot(its, values, marker='o', markersize=3, label=run, linestyle='-' if 'sum' in run or run == 'srgan'
                    else '--', color='k' if run == 'srgan' else None)
        ax.set_xlabel('iteration'), ax.set_title(f'{metric.upper()} on held-out tiles (mean over seeds)')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def plot_crops(results: Dict[str, Any], output: str) -> None:
    seed = next(iter(results['per_seed'].values()))
    hrs, lq_folder, _ = held_out()
    sources = {'initial': (osp.join(OPTIONS, 'train_SRResNet_demo.yml'), INITIAL)}
    sources.update({run: (GAN_OPTIONS, osp.join(ROOT, seed['runs'][run]['experiment'], 'models',
                                                f'net_g_{results["iters"]}.pth'))
                    for run in seed['runs'] if run in ('srgan', 'high_mean') or run.endswith('_sum')})
    srs = demo.upscale_photos(demo.generator_upscalers(sources), lq_folder)
    demo.plot_comparison(srs, hrs, output)


def report_name(iters: int, kind: str, label: Optional[str] = None) -> str:
    """``chain.json``, ``curves.png``, ...; ``chain_i600.json`` for runs of 600 iterations (not the default);
    ``chain_i600_<label>.json`` with ``--label``."""
    stem, extension = osp.splitext(kind)
    return osp.join(OUT, stem + ('' if iters == DEFAULT_ITERS else f'_i{iters}') + (f'_{label}' if label else '')
                    + extension)


def report(results: Dict[str, Any]) -> None:
    text = markdown(results)
    print(text)
    os.makedirs(OUT, exist_ok=True)

    def named(kind: str) -> str:
        return report_name(results['iters'], kind, results.get('label'))

    with open(named('chain.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f)
    with open(named('chain.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    plot_curves(results, named('curves.png'))
    plot_crops(results, named('crops.png'))
    print(f'Written: {osp.relpath(named("chain.json"), ROOT)} (and .md, curves, crops)')


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--every', type=int, default=50, help='checkpoint (and measurement) period')
    parser.add_argument('--qualities', nargs='+', choices=list(QUALITIES), default=list(QUALITIES))
    parser.add_argument('--reductions', nargs='+', choices=list(REDUCTIONS), default=list(REDUCTIONS))
    parser.add_argument('--fresh', action='store_true', help='retrain runs that finished before')
    parser.add_argument('--label', help='report files chain[_i<iters>]_<label>.*: a subset beside the full run')
    parser.add_argument('--report', action='store_true', help='only the tables and figures, from chain.json')
    args = parser.parse_args(argv)
    if args.report:
        with open(report_name(args.iters, 'chain.json', args.label), encoding='utf-8') as f:
            return report(json.load(f))
    if not osp.isfile(INITIAL):
        sys.exit(f'{INITIAL} is missing: run `make demo` first (the photos and the initial generator).')
    if args.iters % args.every:
        sys.exit('--iters must be a multiple of --every.')
    rankers = train_rankers(args.qualities)
    per_seed = {}
    for seed in args.seeds:
        runs = train_seed(seed, rankers, args.reductions, args.iters, args.every, args.fresh)
        per_seed[seed] = measure_seed(runs, rankers, args.iters, args.every, seed)
        report({'seeds': args.seeds[:len(per_seed)], 'iters': args.iters, 'every': args.every, 'rankers': rankers,
                'reductions': args.reductions, 'per_seed': per_seed, 'label': args.label})


if __name__ == '__main__':
    main()
