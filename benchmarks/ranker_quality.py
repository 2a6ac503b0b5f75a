"""Issue 34: a CPU-scale NIQE Ranker judged on held-out photos (SROCC and pair accuracy), at chosen qualities.

    python benchmarks/ranker_quality.py [--seeds 0 1 2] [--iters 600] [--label-noise 0] [--mix-locations 4]
        [--levels ...] [--set key=value ...] [--tag name]

Exports the photo sets (ranksrgan_plugin/evidence_photos.py) and builds the rank sets of
options/rank_dataset_evidence.yml once (Ranker-training photos; held-out photos), then trains
options/train_Ranker_evidence.yml per seed and measures each Ranker on every patch of the held-out photos.
``--mix-locations G`` (default 4; 0 = the paper's pairs of one location) trains on keys holding G locations
(:func:`mix_locations`); ``--iters``, ``--label-noise S`` (N(0, S^2) added to the training labels, seeded),
``--levels`` and ``--set`` (any option, dotted keys) vary the Ranker: fewer iterations, noisier labels or no
mixing give worse Rankers. A finished training with the same options is reused. Prints a markdown table;
appends its rows to results/evidence/ranker_quality.jsonl.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import ranksrgan_plugin  # noqa: F401  (compat fixes first)

# isort: split
from ranksrgan_plugin import demo
from ranksrgan_plugin.evidence_photos import export_evidence_photos
from ranksrgan_plugin.metrics.ranker_evaluation import evaluate_ranker
from ranksrgan_plugin.utils.options import write_options

ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
OUT = osp.join(ROOT, 'results', 'evidence')
PHOTOS = osp.join(ROOT, 'datasets', 'evidence_photos')


def build_rank_sets(fresh: bool = False) -> Dict[str, str]:
    """{'train': split folder, 'heldout': split folder} of the rank sets, built when missing (timed)."""
    cfg = demo.read_yaml(osp.join(ROOT, 'options', 'rank_dataset_evidence.yml'))
    roots: Dict[str, str] = {}
    for photos in ('train', 'heldout'):
        output = osp.join(ROOT, cfg['output'] + ('' if photos == 'train' else '_heldout'))
        roots[photos] = osp.join(output, 'train')
        if fresh or not osp.isfile(osp.join(output, 'manifest.json')):
            start = time.time()
            export_evidence_photos(PHOTOS)
            text = json.dumps(cfg).replace('evidence_photos/train/', f'evidence_photos/{photos}/')
            built = {**json.loads(text), 'output': output}
            for level in built['levels']:  # paths from the repository root
                for key in ('weights', 'folder'):
                    if level.get(key):
                        level[key] = osp.join(ROOT, level[key])
            demo.build_rank_dataset({**built, 'hr': osp.join(ROOT, built['hr'])})
            print(f'rank set {photos}: built in {time.time() - start:.0f} s', flush=True)
    return roots


def mix_locations(src: str, group: int, repeats: int = 6, seed: int = 0) -> str:
    """A rank split whose keys each hold every level of ``group`` random locations of ``src`` as its "levels"
    (slots s0, s1, ...; patches are links to files extracted once), so a training pair is as often two
    locations as one: the Ranker learns scores comparable across locations, which SROCC over all patches
    needs (the paper's pairs are of one location only). ``repeats`` shuffles of the locations."""
    dst = osp.abspath(f'{src}_mix{group}')
    if osp.isfile(osp.join(dst, 'manifest.json')):
        return dst
    import lmdb

    manifest = json.load(open(osp.join(src, 'manifest.json'), encoding='utf-8'))
    rows = [line.split() for line in open(osp.join(src, 'labels.txt'), encoding='utf-8') if not line.startswith('#')]
    locations = sorted({key for key, _, _ in rows})
    labels = {(key, level): label for key, level, label in rows}
    os.makedirs(osp.join(dst, 'patches'), exist_ok=True)
    for level in manifest['levels']:
        with lmdb.open(osp.join(src, f'{level}.lmdb'), readonly=True, lock=False).begin() as txn:
            for key in locations:
                with open(osp.join(dst, 'patches', f'{key}_{level}.png'), 'wb') as f:
                    f.write(txn.get(key.encode()))
    rng = np.random.default_rng(seed)
    slots = [f's{i}' for i in range(group * len(manifest['levels']))]
    lines = ['# key level label\n']
    for repeat in range(repeats):
        order = rng.permutation(locations)
        for index in range(len(order) // group):
            key = f'mix{repeat}_{index:04d}'
            items = [(loc, level) for loc in order[index * group:(index + 1) * group] for level in manifest['levels']]
            for slot, (loc, level) in zip(slots, items):
                os.makedirs(osp.join(dst, slot), exist_ok=True)
                os.symlink(osp.join(dst, 'patches', f'{loc}_{level}.png'), osp.join(dst, slot, f'{key}.png'))
                lines.append(f'{key} {slot} {labels[(loc, level)]}\n')
    with open(osp.join(dst, 'labels.txt'), 'w', encoding='utf-8') as f:
        f.writelines(lines)
    with open(osp.join(dst, 'manifest.json'), 'w', encoding='utf-8') as f:
        json.dump({**manifest, 'levels': slots, 'storage': 'folder', 'mixed_from': src, 'group': group}, f, indent=1)
    return dst


def noisy_labels(train_root: str, noise: float, seed: int) -> str:
    """A copy of the training labels with N(0, noise^2) added (seeded); its path."""
    path = osp.join(train_root, f'labels_evidence_noise{noise:g}_s{seed}.txt')
    if not osp.isfile(path):
        rng = np.random.default_rng(1000 + seed)
        with open(osp.join(train_root, 'labels.txt'), encoding='utf-8') as src, open(path, 'w') as dst:
            for line in src:
                if line.startswith('#'):
                    dst.write(line)
                    continue
                key, level, label = line.split()
                dst.write(f'{key} {level} {float(label) + rng.normal(0, noise):.6f}\n')
    return path


def train_or_keep(options: Dict[str, Any], values: Dict[str, Any], path: str, last: str, origin: str,
                  fresh: bool = False) -> Tuple[str, bool]:
    """(experiment folder, whether it trained now) of a BasicSR run of ``options`` with ``values`` set (its options
    written to ``path``); a finished run (``models/<last>`` on disk, the same options) is kept unless ``fresh``."""
    previous = open(path, encoding='utf-8').read() if osp.isfile(path) else None
    write_options(options, values, path, f'{origin}: {values["name"]}')
    experiment = osp.join(ROOT, 'experiments', values['name'])
    same = previous == open(path, encoding='utf-8').read()
    if not fresh and same and osp.isfile(osp.join(experiment, 'models', last)):
        print(f'  {values["name"]}: done before, kept', flush=True)
        return experiment, False
    demo.train_with_basicsr(path, ROOT, f'  {values["name"]}', osp.join(OUT, 'logs'))
    return experiment, True


def train_and_measure(roots: Dict[str, str], seed: int, iters: int, noise: float, levels: Optional[List[str]],
                      mix: int, extra: Dict[str, Any], tag: str) -> Dict[str, Any]:
    """Train (or reuse) one Ranker (``mix`` > 0: on :func:`mix_locations` of the training split, all levels);
    its held-out SROCC and pair accuracy."""
    options = demo.read_yaml(osp.join(ROOT, 'options', 'train_Ranker_evidence.yml'))
    levels = levels or options['datasets']['train'].get('levels')
    train_root = mix_locations(roots['train'], mix) if mix else roots['train']
    values: Dict[str, Any] = {
        'name': f'Ranker_evidence_{tag}_s{seed}', 'manual_seed': seed, 'train.total_iter': iters,
        'datasets.train.dataroot': train_root, 'datasets.val.dataroot': roots['heldout'],
        'datasets.train.levels': None if mix else levels, 'datasets.val.levels': levels,
        'datasets.train.io_backend': None if mix else {'type': 'lmdb'},
        'datasets.train.labels_file': noisy_labels(train_root, noise, seed) if noise else None,
        'train.scheduler.milestones': [int(iters * 0.75)], 'logger.save_checkpoint_freq': iters,
        'val.val_freq': iters, **extra}
    path = osp.join(OUT, 'options', f'{values["name"]}.yml')
    start = time.time()
    experiment, trained = train_or_keep(options, values, path, 'net_r_latest.pth', 'benchmarks/ranker_quality.py')
    seconds = round(time.time() - start, 1) if trained else None
    net = demo.load_network(path, 'network_r', osp.join(experiment, 'models', 'net_r_latest.pth'))
    result = evaluate_ranker(net, roots['heldout'], 'cpu', levels=levels)
    return {'tag': tag, 'seed': seed, 'iters': iters, 'label_noise': noise, 'levels': levels, 'mix': mix, 'set': extra,
            'srocc': round(result['srocc'], 4), 'pair_accuracy': round(result['pair_accuracy'], 4),
            'patches': len(result['scores']), 'train_s': seconds}


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML reads it."""
    import yaml

    return yaml.safe_load(text)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--iters', type=int, default=None, help="default: the options file's total_iter")
    parser.add_argument('--label-noise', type=float, default=0.0)
    parser.add_argument('--levels', nargs='+', default=None)
    parser.add_argument('--mix-locations', type=int, default=4, help='locations per training key; 0: one (paper)')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    parser.add_argument('--tag', default=None, help='run name part (default: from the arguments)')
    parser.add_argument('--rebuild', action='store_true', help='rebuild the rank sets')
    args = parser.parse_args(argv)
    extra = {k: parse_value(v) for k, v in (item.split('=', 1) for item in args.set)}
    iters = args.iters or demo.read_yaml(osp.join(ROOT, 'options', 'train_Ranker_evidence.yml'))['train']['total_iter']
    tag = args.tag or '_'.join([f'i{iters}', f'n{args.label_noise:g}', f'm{args.mix_locations}', *(args.levels or []),
                                *(f'{k.split(".")[-1]}{v}' for k, v in extra.items())])
    roots = build_rank_sets(args.rebuild)
    rows = [train_and_measure(roots, seed, iters, args.label_noise, args.levels, args.mix_locations, extra, tag)
            for seed in args.seeds]
    os.makedirs(OUT, exist_ok=True)
    with open(osp.join(OUT, 'ranker_quality.jsonl'), 'a', encoding='utf-8') as f:
        f.writelines(json.dumps(row) + '\n' for row in rows)
    print('\n| run | seed | iters | label noise | held-out SROCC | pair accuracy | patches | train s |\n'
          '|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['tag']} | {r['seed']} | {r['iters']} | {r['label_noise']:g} | {r['srocc']:.3f} | "
              f"{r['pair_accuracy']:.3f} | {r['patches']} | {r['train_s'] or 'reused'} |")
    sroccs = [r['srocc'] for r in rows]
    print(f'\nheld-out SROCC over {len(rows)} seed(s): {np.mean(sroccs):.3f} +- {np.std(sroccs):.3f}')


if __name__ == '__main__':
    sys.exit(main())
