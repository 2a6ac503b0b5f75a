"""Validation curves read off training logs: BasicSR experiment logs and MMagic (mmengine) work dirs.

A run is a BasicSR experiment folder (its ``train_*.log`` files, oldest first, so resumed runs
join up), one BasicSR log file, an MMagic work dir (its ``*/vis_data/scalars.json``) or one such
``scalars.json``. BasicSR: each ``Validation <dataset>`` block's ``# <metric>: <value>`` lines are
taken at the ``iter:`` of the last training log line before it (so ``print_freq`` should divide
``val_freq``); a repeated iteration keeps its last value. MMagic: the records that hold the metric
(key ``<metric>`` or ``<prefix>/<metric>``, any case) at their ``step``.
"""
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

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


_MONITOR = re.compile(r'iter:\s*([\d,]+).*?out_r: (\S+) gt_r: (\S+) out_beats_gt: (\S+)')
_MONITOR_WARNING = re.compile(r'WARNING: Ranker exploitation \(iterations (\d+)-(\d+)')


def ranker_monitor_log(experiment: str) -> Dict[str, list]:
    """The Ranker-exploitation monitor's readings in a BasicSR RankSRGAN experiment's logs: ``points``
    (``{iter, out_r, gt_r, out_beats_gt}`` per logged iteration) and ``warnings`` (``(first, last)`` iteration
    of each warned period)."""
    points, warnings = [], []
    for file in sorted(glob.glob(osp.join(experiment, 'train_*.log'))):
        with open(file, encoding='utf-8') as f:
            for line in f:
                if (m := _MONITOR.search(line)) is not None:
                    points.append({'iter': int(m.group(1).replace(',', '')), 'out_r': float(m.group(2)),
                                   'gt_r': float(m.group(3)), 'out_beats_gt': float(m.group(4))})
                elif (m := _MONITOR_WARNING.search(line)) is not None:
                    warnings.append((int(m.group(1)), int(m.group(2))))
    return {'points': points, 'warnings': warnings}
