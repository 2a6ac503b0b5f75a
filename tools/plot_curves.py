"""Convergence curves (the paper's NIQE / PSNR against iterations) of several runs on one PNG.

    python tools/plot_curves.py --runs experiments/SRGAN experiments/RankSRGAN_NIQE \
        --labels SRGAN RankSRGAN --metrics niqe psnr --output curves.png

A run is a BasicSR experiment folder (its ``train_*.log`` files, oldest first, so resumed runs
join up), one BasicSR log file, an MMagic work dir (its ``*/vis_data/scalars.json``) or one such
``scalars.json``. BasicSR: each ``Validation <dataset>`` block's ``# <metric>: <value>`` lines are
taken at the ``iter:`` of the last training log line before it (so ``print_freq`` should divide
``val_freq``); a repeated iteration keeps its last value. MMagic: the records that hold the metric
(key ``<metric>`` or ``<prefix>/<metric>``, any case) at their ``step``. One panel per metric, one
line per run; ``--dataset`` picks a validation set when a log has several.
"""
import argparse
import glob
import json
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

Curve = List[Tuple[int, float]]
Curves = Dict[str, Dict[str, Curve]]  # dataset -> metric -> [(iter, value)]

_ITER = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+)')
_VALIDATION = re.compile(r'INFO: Validation (.+?)\s*$')
_METRIC = re.compile(r'^\s*# (\w+): ([-+0-9.eE]+|nan|inf)')


class CurveError(ValueError):
    """A run with no log, or no value of a requested metric."""


def _add(curves: Curves, dataset: str, metric: str, it: int, value: float) -> None:
    points = curves.setdefault(dataset, {}).setdefault(metric.lower(), [])
    points[:] = [p for p in points if p[0] != it] + [(it, value)]


def parse_basicsr_log(lines: Sequence[str], curves: Optional[Curves] = None) -> Curves:
    """Validation curves of BasicSR log lines (adds to ``curves`` when given)."""
    curves = {} if curves is None else curves
    current_iter, dataset = 0, None
    for line in lines:
        if (m := _ITER.search(line)) is not None:
            current_iter, dataset = int(m.group(1).replace(',', '')), None
        elif (m := _VALIDATION.search(line)) is not None:
            dataset = m.group(1)
        elif dataset is not None and (m := _METRIC.match(line)) is not None:
            _add(curves, dataset, m.group(1), current_iter, float(m.group(2)))
        elif dataset is not None and 'INFO:' in line:
            dataset = None
    for per_metric in curves.values():
        for points in per_metric.values():
            points.sort()
    return curves


def parse_mmagic_scalars(lines: Sequence[str], curves: Optional[Curves] = None) -> Curves:
    """Validation curves of MMEngine ``scalars.json`` lines: every numeric key but the training ones."""
    curves = {} if curves is None else curves
    skip = {'step', 'iter', 'epoch', 'lr', 'time', 'data_time', 'memory', 'base_lr'}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        record = json.loads(line)
        if 'step' not in record or any(k.startswith('loss') or '.loss' in k for k in record):
            continue
        for key, value in record.items():
            if key in skip or not isinstance(value, (int, float)):
                continue
            dataset, _, metric = key.rpartition('/')
            _add(curves, dataset or 'val', metric, int(record['step']), float(value))
    for per_metric in curves.values():
        for points in per_metric.values():
            points.sort()
    return curves


def load_run(path: str) -> Curves:
    """The curves of one run (BasicSR experiment folder or log, MMagic work dir or scalars.json)."""
    if osp.isdir(path):
        logs = sorted(glob.glob(osp.join(path, 'train_*.log')))
        scalars = sorted(glob.glob(osp.join(path, '**', 'vis_data', 'scalars.json'), recursive=True))
        files = logs or scalars
        if not files:
            raise CurveError(f'{path} holds no BasicSR train_*.log and no MMagic */vis_data/scalars.json.')
    elif osp.isfile(path):
        files = [path]
    else:
        raise CurveError(f'{path} does not exist.')
    curves: Curves = {}
    for file in files:
        with open(file) as f:
            lines = f.readlines()
        if file.endswith('.json'):
            parse_mmagic_scalars(lines, curves)
        else:
            parse_basicsr_log(lines, curves)
    return curves


def select(curves: Curves, metric: str, dataset: Optional[str], run: str) -> Curve:
    """The curve of ``metric`` (on ``dataset``, or the only / first dataset that has it)."""
    metric = metric.lower()
    having = [d for d, per_metric in curves.items() if metric in per_metric]
    if dataset is not None:
        having = [d for d in having if d == dataset]
    if not having:
        found = sorted({f'{d}/{m}' for d, per_metric in curves.items() for m in per_metric})
        raise CurveError(f'Run {run}: no {metric!r} values{f" on {dataset!r}" if dataset else ""} '
                         f'(found: {", ".join(found) or "no validation at all"}).')
    return curves[having[0]][metric]


def plot_curves(runs: Dict[str, Curves], metrics: Sequence[str], output: str, dataset: Optional[str] = None,
                title: Optional[str] = None) -> str:
    """One panel per metric, one line per run; writes the PNG ``output`` and returns its path."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, curves in runs.items():
            points = select(curves, metric, dataset, label)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', markersize=3, label=label)
        ax.set_xlabel('iteration')
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` and write the figure; exit status 0, or 2 with a message on bad inputs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', nargs='+', required=True, help='experiment folders / logs / MMagic work dirs')
    parser.add_argument('--labels', nargs='+', help='legend label of each run (default: folder names)')
    parser.add_argument('--metrics', nargs='+', default=['niqe', 'psnr'], help='default: niqe psnr')
    parser.add_argument('--dataset', help='validation set name when a log has several')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--output', default='curves.png', help='PNG to write')
    args = parser.parse_args(argv)
    labels = args.labels or [osp.basename(osp.normpath(r)) for r in args.runs]
    if len(labels) != len(args.runs):
        print(f'error: {len(labels)} labels for {len(args.runs)} runs', file=sys.stderr)
        return 2
    try:
        runs = {label: load_run(path) for label, path in zip(labels, args.runs)}
        plot_curves(runs, args.metrics, args.output, args.dataset, args.title)
    except CurveError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'Wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
