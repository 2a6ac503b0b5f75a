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
import os.path as osp
import sys
from typing import List, Optional

from ranksrgan_plugin.utils.curve_plots import plot_curves
from ranksrgan_plugin.utils.training_logs import CurveError, load_run, select  # noqa: F401  (the tool's API)


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
