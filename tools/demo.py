"""`make demo`: RankSRGAN against SRGAN on scikit-image's photos, offline, on CPU or GPU.

    python tools/demo.py [--seeds 0 1 2] [--verbose]

1. photos: 6 for training, 3 held out (every number below is measured on the held-out ones);
2. the initial generator: a small PSNR-oriented SRResNet (L1), as the paper starts from SRResNet;
then for each seed:
3. SRGAN from the initial generator (GAN + L1);
4. a rank dataset whose levels are SR networks of rising quality, as the paper's: the initial
   generator, that SRGAN, and the HR image; NIQE labels;
5. the Ranker on it (SROCC and pair accuracy on the held-out photos' patches, untrained vs trained);
6. RankSRGAN: the same SRGAN run (same start, seed, data, iterations) plus the frozen Ranker's
   rank-content loss;
7. PSNR, NIQE and the Ranker's score of bicubic / initial / SRGAN / RankSRGAN on the held-out photos.
Prints one line per stage and the tables (BasicSR's logs go to results/demo/logs/; ``--verbose``
shows them), and writes results/demo/: demo_results.json, evaluation.md, comparison.png,
sr_curves.png, ranker_histograms.png.
"""
import argparse
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
import cv2
import numpy as np

from ranksrgan_plugin import demo
from ranksrgan_plugin.utils.curve_plots import plot_curves
from ranksrgan_plugin.utils.options import write_options_with
from ranksrgan_plugin.utils.training_logs import load_run, ranker_monitor_log
from ranksrgan_plugin.utils.upscaler import default_device

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
OPTIONS = osp.join(REPO_ROOT, 'options')
DATASET_OPTIONS = osp.join(OPTIONS, 'rank_dataset_demo.yml')
RANKER_OPTIONS = osp.join(OPTIONS, 'train_Ranker_demo.yml')
INITIAL_OPTIONS = osp.join(OPTIONS, 'train_SRResNet_demo.yml')
GAN_OPTIONS = osp.join(OPTIONS, 'train_RankSRGAN_demo.yml')
HR = osp.join(REPO_ROOT, 'datasets', 'demo', 'hr')
SR_DATA = osp.join(REPO_ROOT, 'datasets', 'demo', 'sr')
RESULTS = osp.join(REPO_ROOT, 'results', 'demo')
LOGS = osp.join(RESULTS, 'logs')
GENERATORS = ('bicubic', 'initial', 'srgan', 'ranksrgan')


class Stages:
    """Numbered one-line stage headers."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def __call__(self, text: str) -> None:
        self.done += 1
        print(f'[{self.done}/{self.total}] {text}', flush=True)


def variant(options_file: str, name: str, values: Dict[str, Any]) -> str:
    """A copy of a demo options file under results/demo/options/ with ``name`` and ``values`` set."""
    return write_options_with(options_file, {'name': name, **values}, osp.join(RESULTS, 'options', f'{name}.yml'),
                              f'{osp.relpath(options_file, REPO_ROOT)} as tools/demo.py ran it')


def train(options_file: str, desc: str, verbose: bool) -> str:
    return demo.train_with_basicsr(options_file, REPO_ROOT, desc, LOGS, verbose)


def run_seed(seed: int, initial: str, stages: Stages, verbose: bool, figures: bool) -> Dict[str, Any]:
    """Steps 3-7 for one seed; returns its Ranker and generator scores (and the runs' folders)."""
    start = {'path.pretrain_network_g': demo.latest(initial, 'g'), 'manual_seed': seed}
    stages(f'seed {seed}: SRGAN from the initial generator')
    srgan = train(variant(GAN_OPTIONS, f'SRGAN_demo_s{seed}', {**start, 'model_type': 'SRGANModel'}),
                  '  SRGAN', verbose)
    stages(f'seed {seed}: rank dataset (levels: initial, SRGAN, HR; NIQE labels)')
    rank_set = build_rank_set(seed, initial, srgan, verbose)
    stages(f'seed {seed}: Ranker')
    ranker_options = variant(RANKER_OPTIONS, f'Ranker_demo_s{seed}', {
        'manual_seed': seed, 'datasets.train.dataroot': osp.join(rank_set, 'train'),
        'datasets.val.dataroot': osp.join(rank_set, 'val')})
    ranker_run = train(ranker_options, '  Ranker', verbose)
    ranker_weights = demo.latest(ranker_run, 'r')
    ranker = demo.evaluate_ranker(ranker_options, ranker_weights, osp.join(rank_set, 'val'),
                                  osp.join(RESULTS, 'ranker_histograms.png') if figures else None)
    stages(f'seed {seed}: RankSRGAN (the SRGAN run plus the frozen Ranker)')
    net_r = demo.load_network(ranker_options, 'network_r', ranker_weights, default_device())
    upscalers = demo.generator_upscalers({
        'bicubic': None, 'initial': (INITIAL_OPTIONS, demo.latest(initial, 'g')),
        'srgan': (GAN_OPTIONS, demo.latest(srgan, 'g'))})
    initial_outputs = demo.upscale_photos({'initial': upscalers['initial']}, osp.join(SR_DATA, 'train', 'lq'))
    bias = float(np.mean(demo.ranker_scores(net_r, initial_outputs['initial'])))
    ranksrgan = train(variant(GAN_OPTIONS, f'RankSRGAN_demo_s{seed}', {
        **start, 'path.pretrain_network_r': ranker_weights, 'train.rank_opt.bias': round(bias, 4)}),
        '  RankSRGAN', verbose)
    upscalers.update(demo.generator_upscalers({'ranksrgan': (GAN_OPTIONS, demo.latest(ranksrgan, 'g'))}))
    srs = demo.upscale_photos(upscalers, osp.join(SR_DATA, 'val', 'lq'))
    generators = demo.image_scores(srs, osp.join(SR_DATA, 'val', 'gt'), net_r)
    if figures:
        hr = {name: cv2.imread(osp.join(SR_DATA, 'val', 'gt', name)) for name in srs['bicubic']}
        demo.plot_comparison({'bicubic': srs['bicubic'], 'initial': srs['initial'], 'SRGAN': srs['srgan'],
                              'RankSRGAN': srs['ranksrgan']}, hr, osp.join(RESULTS, 'comparison.png'))
        plot_curves({'SRGAN': load_run(srgan), 'RankSRGAN': load_run(ranksrgan)}, ['niqe', 'psnr'],
                    osp.join(RESULTS, 'sr_curves.png'), title=f'held-out photos during training (seed {seed})')
    return {'ranker': ranker, 'generators': generators, 'rank_content_bias': bias,
            'monitor': ranker_monitor_log(ranksrgan),
            'runs': {'srgan': srgan, 'ranker': ranker_run, 'ranksrgan': ranksrgan, 'rank_set': rank_set}}


def build_rank_set(seed: int, initial: str, srgan: str, verbose: bool) -> str:
    cfg = demo.read_yaml(DATASET_OPTIONS)
    weights = {'initial': demo.latest(initial, 'g'), 'srgan': demo.latest(srgan, 'g')}
    cfg['levels'] = [{**level, 'weights': weights[level['name']]} if level['name'] in weights else level
                     for level in cfg['levels']]
    cfg.update(hr=HR, output=osp.join(REPO_ROOT, cfg['output'] + f'_s{seed}'))
    return demo.build_rank_dataset(cfg, progress=True)['output']


def summarise(per_seed: List[Dict[str, Any]], seeds: Sequence[int]) -> Dict[str, Any]:
    return {'seeds': list(seeds),
            'ranker': demo.aggregate([r['ranker'] for r in per_seed]),
            'generators': demo.aggregate([{g: r['generators'][g] for g in GENERATORS} for r in per_seed]),
            'per_seed': per_seed}


def tables(results: Dict[str, Any]) -> str:
    seeds = results['seeds']
    across = f'mean +- std over seeds {seeds}' if len(seeds) > 1 else f'seed {seeds[0]}'
    text = demo.markdown_table(f'Ranker on the held-out photos\' patches ({across}):',
                               {'srocc': 'SROCC', 'pair_accuracy': 'pair accuracy'}, results['ranker'])
    text += demo.markdown_table(
        f'Generators on the held-out photos (Y channel, 4-pixel shave; {across}):',
        {'psnr': 'PSNR (dB)', 'niqe': 'NIQE (lower = better)', 'ranker_score': 'Ranker score (lower = better)'},
        results['generators'])
    return text + monitor_summary(results) + (
        '\n100 iterations cannot separate SRGAN and RankSRGAN on NIQE, and 600 iterations x 3 seeds could not either: '
        'docs/demo.md, "Longer runs" (benchmarks/evidence.py, about 90 minutes), shows what holds at this scale.\n')


def monitor_summary(results: Dict[str, Any]) -> str:
    """The Ranker-exploitation monitor's readings of each seed's RankSRGAN run (its training batches)."""
    lines = ['\nRanker-exploitation monitor (RankSRGAN\'s training batches: share of outputs the Ranker scores '
             'better than their GT by its margin, per logged iteration; warnings):']
    for seed, run in zip(results['seeds'], results['per_seed']):
        points = run['monitor']['points']
        shares = ' '.join(f'{p["iter"]}: {p["out_beats_gt"]:.0%}' for p in points)
        lines.append(f'  seed {seed}: {shares or "no readings"}; {len(run["monitor"]["warnings"])} warning(s)')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='RankSRGAN against SRGAN on the bundled photos.')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0], help='one run of steps 3-7 per seed')
    parser.add_argument('--verbose', action='store_true', help="show BasicSR's full training logs")
    args = parser.parse_args(argv)
    os.makedirs(RESULTS, exist_ok=True)
    stages = Stages(2 + 4 * len(args.seeds))
    split = demo.write_paired_photos(HR, SR_DATA, demo.read_yaml(DATASET_OPTIONS)['val_fraction'],
                                     demo.read_yaml(DATASET_OPTIONS)['seed'])
    stages(f'photos: {len(split["train"])} for training, {len(split["val"])} held out ({", ".join(split["val"])})')
    stages('initial generator (L1)')
    initial = train(INITIAL_OPTIONS, '  initial', args.verbose)
    per_seed = [run_seed(seed, initial, stages, args.verbose, figures=index == 0)
                for index, seed in enumerate(args.seeds)]
    results = summarise(per_seed, args.seeds)
    text = tables(results)
    print(text)
    with open(osp.join(RESULTS, 'demo_results.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(RESULTS, 'evaluation.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    print(f'Results: {osp.relpath(RESULTS, REPO_ROOT)}/ (demo_results.json, evaluation.md, comparison.png, '
          f'sr_curves.png, ranker_histograms.png); logs: {osp.relpath(LOGS, REPO_ROOT)}/; runs: experiments/')


if __name__ == '__main__':
    main()
