"""Two frozen Rankers in one RankSRGAN run (``rankers:``) on the demo's photos, against the demo's one-Ranker run.

Needs ``make demo`` first (its seed-0 runs and option files under results/demo/options/). Trains a second demo
Ranker on the same rank set with another seed (only NIQE labels can be made offline: Ma needs model.mat, so the
second Ranker is a second NIQE Ranker: a demonstration of the mechanics and the cost, not of a second metric),
then RankSRGAN with both Rankers (each the demo's rank-content loss), same start, seed, data and iterations as the
demo's RankSRGAN; prints NIQE / PSNR on the held-out photos, both Rankers' mean scores of the outputs, and the
seconds per iteration of each run (its wall time / iterations, start-up included).

    python benchmarks/two_rankers.py
"""
import json
import os.path as osp
import sys
import time

import numpy as np

import ranksrgan_plugin  # noqa: F401  (compat fixes first)

# isort: split
from ranksrgan_plugin import demo
from ranksrgan_plugin.utils.options import write_options
from ranksrgan_plugin.utils.upscaler import default_device

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
DEMO = osp.join(ROOT, 'results', 'demo')
OUT = osp.join(ROOT, 'results', 'two_rankers')
VAL = osp.join(ROOT, 'datasets', 'demo', 'sr', 'val')


def train(options: dict, name: str) -> tuple:
    """(experiment folder, seconds per iteration) of a BasicSR run of ``options`` named ``name``."""
    path = write_options(options, {'name': name}, osp.join(OUT, 'options', f'{name}.yml'),
                         f'benchmarks/two_rankers.py: {name}')
    start = time.perf_counter()
    experiment = demo.train_with_basicsr(path, ROOT, f'  {name}', osp.join(OUT, 'logs'))
    return experiment, (time.perf_counter() - start) / int(options['train']['total_iter'])


def main() -> None:
    gan_file, ranker_file = (osp.join(DEMO, 'options', f'{name}_demo_s0.yml') for name in ('RankSRGAN', 'Ranker'))
    if not osp.isfile(gan_file):
        sys.exit(f'{gan_file} is missing: run `make demo` first.')
    gan, ranker = demo.read_yaml(gan_file), demo.read_yaml(ranker_file)
    first = gan['path']['pretrain_network_r']
    second_run, _ = train({**ranker, 'manual_seed': 1}, 'Ranker_demo_second')
    second = demo.latest(second_run, 'r')
    one_run, one_seconds = train(gan, 'RankSRGAN_demo_one_ranker')
    two = {key: value for key, value in gan.items() if key != 'network_r'}
    two['path'] = {k: v for k, v in gan['path'].items() if k not in ('pretrain_network_r', 'strict_load_r')}
    two['train'] = {k: v for k, v in gan['train'].items() if k not in ('rank_opt', 'ranker_batchnorm')}
    two['rankers'] = [{'name': name, 'network': gan['network_r'], 'path': path, 'rank_opt': gan['train']['rank_opt'],
                       'batchnorm': gan['train'].get('ranker_batchnorm', 'batch')}
                      for name, path in (('first', first), ('second', second))]
    two_run, two_seconds = train(two, 'RankSRGAN_demo_two_rankers')
    device = default_device()
    rankers = {name: demo.load_network(ranker_file, 'network_r', path, device)
               for name, path in (('first', first), ('second', second))}
    srs = demo.upscale_photos(demo.generator_upscalers({
        'one Ranker': (gan_file, demo.latest(one_run, 'g')), 'two Rankers': (gan_file, demo.latest(two_run, 'g'))}),
        osp.join(VAL, 'lq'))
    rows = {}
    for run, images in srs.items():
        scores = demo.image_scores({run: images}, osp.join(VAL, 'gt'), rankers['first'])[run]
        scores['second_ranker_score'] = float(np.mean(demo.ranker_scores(rankers['second'], images)))
        scores['seconds_per_iteration'] = one_seconds if run == 'one Ranker' else two_seconds
        rows[run] = scores
    print(demo.markdown_table('RankSRGAN on the held-out photos, 100 iterations, seed 0:', {
        'psnr': 'PSNR (dB)', 'niqe': 'NIQE', 'ranker_score': 'first Ranker score', 'second_ranker_score':
        'second Ranker score', 'seconds_per_iteration': 's / iteration (run wall time)'}, rows))
    with open(osp.join(OUT, 'two_rankers.json'), 'w', encoding='utf-8') as f:
        json.dump(rows, f, indent=2)


if __name__ == '__main__':
    main()
