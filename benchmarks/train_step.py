"""Cost of RankSRGAN's frozen Ranker: one training step of RankSRGANModel (one Ranker, and two: ``rankers:``) vs
BasicSR's SRGANModel, and of the Ranker-exploitation monitor (off and on every step, measured; one step in 10,
MMagic's default, and in 100, BasicSR's with the paper files' ``print_freq``, computed from those).

Same generator, discriminator, perceptual/GAN losses, batch and GT size, same machine, one run;
prints the median seconds per ``optimize_parameters`` and their ratio (target: <= 1.25 at GT 128
on CPU: the Ranker should cost about one extra discriminator pass). The perceptual VGG19 has
random weights here (timing only, no download).

    python benchmarks/train_step.py [--gt-size 128] [--batch 4] [--steps 7] [--device cpu|cuda]

With ``--precision`` (and ``--channels-last`` / ``--fused`` / ``--compile``): one RankSRGANModel and one RankerModel
step per configuration instead (``train.precision``, ``channels_last``, ``fused_optimizers``, ``compile``; the last
three added one by one on bf16, or ``--base-precision``: the last row is the road's ``--fast``), seconds per step,
the ratio vs the first row and the hours implied for the paper's 500k RankSRGAN + 400k Ranker iterations; the
Ranker step is the paper's (pairs of ``--ranker-batch`` patches of GT size, one pass per side). The header is
printed first and every row as soon as it is measured (a run stopped by a timeout keeps its rows); a row that
fails prints its error and the next one runs (exit status 1); compile and fp16 rows are skipped on the CPU:

    python benchmarks/train_step.py --precision fp32 bf16 fp16 --channels-last --fused --compile --tf32 \\
        --batch 8 --ranker-batch 16 --gt-size 296 --device cuda
"""
import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

# isort: split
from basicsr.models import build_model

from ranksrgan_plugin.archs import RankerVGG
from ranksrgan_plugin.models.training_precision import PRECISIONS


def model_options(model_type: str, gt_size: int, device: str, ranker_path: str) -> Dict[str, Any]:
    opt = {
        'model_type': model_type, 'scale': 4, 'num_gpu': 1 if device == 'cuda' else 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'datasets': {},
        'network_g': {'type': 'RankSRGANGenerator', 'num_feat': 64, 'num_block': 16, 'upscale': 4},
        'network_d': {'type': 'VGGStyleDiscriminatorAnySize', 'num_feat': 64, 'input_size': gt_size},
        'path': {'pretrain_network_g': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'optim_d': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [50000], 'gamma': 0.5},
            'perceptual_opt': {'type': 'VGGPerceptualLoss', 'vgg_weights': None, 'layer_weights': {'conv5_4': 1.0}},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 5e-3},
        },
    }
    if model_type == 'RankSRGANModel':
        opt['network_r'] = {'type': 'RankerVGG', 'depth': 12}
        opt['path']['pretrain_network_r'] = ranker_path
        opt['train']['rank_opt'] = {'type': 'RankContentLoss', 'loss_weight': 0.03}
    return opt


def two_ranker_options(gt_size: int, device: str, ranker_path: str) -> Dict[str, Any]:
    """RankSRGANModel with two frozen VGG-12 Rankers (``rankers:``) instead of one."""
    opt = model_options('RankSRGANModel', gt_size, device, ranker_path)
    del opt['network_r'], opt['path']['pretrain_network_r']
    opt['rankers'] = [{'name': name, 'network': {'type': 'RankerVGG', 'depth': 12}, 'path': ranker_path,
                       'rank_opt': opt['train']['rank_opt']} for name in ('niqe', 'ma')]
    del opt['train']['rank_opt']
    return opt


def time_steps(model, batch: Dict[str, torch.Tensor], steps: int, device: str) -> List[float]:
    times = [one_step_seconds(model, batch, step, device) for step in range(1, steps + 1)]
    return times[2:]  # the first two steps warm up allocators and kernels


def one_step_seconds(model, batch: Dict[str, torch.Tensor], step: int, device: str) -> float:
    """Seconds of one ``optimize_parameters`` at iteration ``step``."""
    model.feed_data(batch)
    if device == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.optimize_parameters(step)
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ranker_options(device: str, values: Dict[str, Any]) -> Dict[str, Any]:
    return {'model_type': 'RankerModel', 'num_gpu': 1 if device == 'cuda' else 0, 'is_train': True, 'dist': False,
            'rank': 0, 'world_size': 1, 'datasets': {}, 'network_r': {'type': 'RankerVGG', 'depth': 12},
            'path': {'pretrain_network_r': None},
            'train': {'rank_opt': {'type': 'RankLoss', 'margin': 0.5, 'clamp': 5},
                      'optim_r': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 1e-4},
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [100000], 'gamma': 0.5}, **values}}


PRECISION_HOURS = {'RankSRGAN': 500_000, 'Ranker': 400_000}  # the paper's iterations per training stage
SPEEDUPS = (('channels_last', 'channels_last', 'channels_last'), ('fused', 'fused_optimizers', 'fused'),
            ('compile', 'compile', 'compile'))  # (flag, train.* option, row label), added in this order


def base_precision(args: argparse.Namespace) -> str:
    """The precision the channels_last / fused / compile rows build on: ``--base-precision``, else bf16 when listed
    (the road's ``--fast``), else the last of ``--precision``."""
    if args.base_precision:
        return args.base_precision
    return 'bf16' if 'bf16' in args.precision else args.precision[-1]


def precision_label(precision: str, args: argparse.Namespace) -> str:
    return 'fp32 (TF32)' if precision == 'fp32' and args.tf32 and args.device == 'cuda' else precision


def configurations(args: argparse.Namespace) -> List[Tuple[str, Dict[str, Any]]]:
    """``(row name, train.* values)``: each precision, then channels_last, fused optimisers and compile added one
    by one on :func:`base_precision` (the last row is the road's ``--fast``: ``ranksrgan_plugin.reproduce.fast``)."""
    rows = [(precision_label(precision, args), {'precision': precision}) for precision in args.precision]
    base = base_precision(args)
    name, values = precision_label(base, args), {'precision': base}
    for flag, option, label in SPEEDUPS:
        if getattr(args, flag):
            name, values = f'{name} + {label}', {**values, option: True}
            rows.append((name, values))
    return rows


def skip_reason(values: Dict[str, Any], device: str) -> str:
    """Why a configuration is not measured on ``device`` ('' when it is)."""
    if device == 'cuda':
        return ''
    if values.get('compile'):
        return ('skipped on CPU: torch.compile is measured on CUDA only (minutes of compiling here; '
                'tools/reproduce.py --fast leaves it off the CPU too)')
    if values['precision'] == 'fp16':
        return 'skipped on CPU: fp16 autocast has no fast CPU kernels (seen 5x to 40x slower than fp32 here)'
    return ''


def step_batches(args: argparse.Namespace) -> Dict[str, Dict[str, torch.Tensor]]:
    """The RankSRGAN batch (``--batch`` LR/GT pairs) and the Ranker's (``--ranker-batch`` pairs of GT size)."""
    size = args.gt_size
    return {'RankSRGAN': {'lq': torch.rand(args.batch, 3, size // 4, size // 4),
                          'gt': torch.rand(args.batch, 3, size, size)},
            'Ranker': {'img_a': torch.rand(args.ranker_batch, 3, size, size),
                       'img_b': torch.rand(args.ranker_batch, 3, size, size),
                       'label_a': torch.rand(args.ranker_batch), 'label_b': torch.rand(args.ranker_batch)}}


def measure_configuration(args: argparse.Namespace, values: Dict[str, Any], ranker_path: str,
                          batches: Dict[str, Dict[str, torch.Tensor]]) -> Dict[str, float]:
    """Median seconds per step of RankSRGANModel and RankerModel with the ``train.*`` ``values``."""
    seconds = {}
    for name, options in (('RankSRGAN', model_options('RankSRGANModel', args.gt_size, args.device, ranker_path)),
                          ('Ranker', ranker_options(args.device, {}))):
        options['train'].update(values)
        torch.manual_seed(0)
        model = build_model(copy.deepcopy(options))
        seconds[name] = statistics.median(time_steps(model, batches[name], args.steps, args.device))
        del model
    return seconds


def table_header(args: argparse.Namespace) -> List[str]:
    """The caption and the table's head, printed before the first row is measured."""
    device = torch.cuda.get_device_name(0) if args.device == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
    return [f'device {device}, torch {torch.__version__}, GT {args.gt_size}, RankSRGAN batch {args.batch}, Ranker '
            f'{args.ranker_batch} pairs, median of {args.steps - 2} steps (each row printed as it is measured; ratio: '
            "times faster than the first row; hours: the paper's iterations at this step time, steps only)",
            '| configuration | RankSRGAN s / step | ratio | h for 500k | Ranker s / step | ratio | h for 400k '
            '| h for both |',
            '|---|---:|---:|---:|---:|---:|---:|---:|']


def table_row(name: str, seconds: Dict[str, float], reference: Dict[str, float]) -> str:
    hours = {stage: seconds[stage] * PRECISION_HOURS[stage] / 3600 for stage in PRECISION_HOURS}
    return (f"| {name} | {seconds['RankSRGAN']:.3f} | {reference['RankSRGAN'] / seconds['RankSRGAN']:.2f}x | "
            f"{hours['RankSRGAN']:.1f} | {seconds['Ranker']:.3f} | {reference['Ranker'] / seconds['Ranker']:.2f}x | "
            f"{hours['Ranker']:.1f} | {sum(hours.values()):.1f} |")


def note_row(name: str, note: str) -> str:
    """A row that was not measured: skipped (why) or failed (the error)."""
    return f'| {name} | {note} | | | | | | |'


def set_tf32(args: argparse.Namespace) -> None:
    """TF32 matrix products and convolutions in fp32 on CUDA with ``--tf32``; cuDNN autotuning as
    ``basicsr/train.py`` sets it (``cudnn.benchmark``)."""
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
        if args.tf32:
            torch.set_float32_matmul_precision('high')
            torch.backends.cudnn.allow_tf32 = True


def precision_table(args: argparse.Namespace, ranker_path: str) -> int:
    """Print the header, then each configuration's row as soon as it is measured; returns the failed rows' count."""
    set_tf32(args)
    batches = step_batches(args)
    print('\n'.join(table_header(args)), flush=True)
    reference, failures = None, 0
    for name, values in configurations(args):
        reason = skip_reason(values, args.device)
        if reason:
            print(note_row(name, reason), flush=True)
            continue
        try:
            seconds = measure_configuration(args, values, ranker_path, batches)
        except Exception as error:  # an OOM or a compile error: the next rows still run
            failures += 1
            print(note_row(name, f'failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}'), flush=True)
            if args.device == 'cuda':
                torch.cuda.empty_cache()
            continue
        reference = reference or seconds
        print(table_row(name, seconds, reference), flush=True)
    return failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--gt-size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--ranker-batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=7, help='steps per model; the first two are not timed')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precision', nargs='+', choices=list(PRECISIONS),
                        help='the precision table instead of the Ranker-cost table')
    parser.add_argument('--base-precision', choices=list(PRECISIONS),
                        help='the precision the channels_last / fused / compile rows add to (default: bf16 when '
                             'listed, else the last of --precision)')
    parser.add_argument('--channels-last', action='store_true', help='a row with channels_last')
    parser.add_argument('--fused', action='store_true',
                        help='a row with fused_optimizers (fused Adam on CUDA, foreach elsewhere)')
    parser.add_argument('--compile', action='store_true', help='a row with torch.compile (CUDA only)')
    parser.add_argument('--tf32', action='store_true', help='TF32 for fp32 matrix products on CUDA')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 3:
        raise SystemExit('--steps must be at least 3 (the first two are not timed).')
    torch.manual_seed(0)
    if args.precision:
        with tempfile.TemporaryDirectory() as tmp:
            ranker_path = os.path.join(tmp, 'ranker.pth')
            torch.save({'params': RankerVGG(depth=12).state_dict()}, ranker_path)
            return 1 if precision_table(args, ranker_path) else 0
    ranker_cost_table(args)
    return 0


def ranker_cost_table(args: argparse.Namespace) -> None:
    """RankSRGANModel (one, two Rankers) vs SRGANModel, and the monitor's cost."""
    batch = {'lq': torch.rand(args.batch, 3, args.gt_size // 4, args.gt_size // 4),
             'gt': torch.rand(args.batch, 3, args.gt_size, args.gt_size)}
    with tempfile.TemporaryDirectory() as tmp:
        ranker_path = os.path.join(tmp, 'ranker.pth')
        torch.save({'params': RankerVGG(depth=12).state_dict()}, ranker_path)
        results = {}
        runs = {model_type: model_options(model_type, args.gt_size, args.device, ranker_path)
                for model_type in ('SRGANModel', 'RankSRGANModel')}
        runs['two Rankers'] = two_ranker_options(args.gt_size, args.device, ranker_path)
        for name, options in runs.items():
            torch.manual_seed(0)
            model = build_model(copy.deepcopy(options))
            results[name] = statistics.median(time_steps(model, batch, args.steps, args.device))
        monitor = monitor_cost(args, batch, ranker_path)
    ratio = results['RankSRGANModel'] / results['SRGANModel']
    threads = torch.get_num_threads() if args.device == 'cpu' else '-'
    print(f'\ndevice {args.device} (torch threads: {threads}), GT {args.gt_size}, batch {args.batch}, '
          f'median of {args.steps - 2} steps')
    print('| model | s / optimize_parameters | ratio vs SRGANModel |\n|---|---|---|')
    print(f"| SRGANModel (BasicSR) | {results['SRGANModel']:.3f} | 1.00 |")
    print(f"| RankSRGANModel (ours) | {results['RankSRGANModel']:.3f} | {ratio:.2f} |")
    two = results['two Rankers']
    print(f"| RankSRGANModel, two Rankers (`rankers:`) | {two:.3f} | {two / results['SRGANModel']:.2f} "
          f"({two / results['RankSRGANModel']:.2f} x one Ranker) |")
    off, every = monitor['off'], monitor['every step']
    print(f'\n| Ranker-exploitation monitor (steps interleaved, median of {args.steps * 2 - 2}) '
          '| s / optimize_parameters | ratio vs off |\n|---|---|---|')
    print(f'| off (`enabled: false`) | {off:.3f} | 1.000 |')
    print(f'| every step (`every: 1`) | {every:.3f} | {every / off:.3f} |')
    for share, label in ((10, 'one step in 10 (the MMagic default)'),
                         (100, 'one step in 100 (BasicSR: `logger.print_freq`, 100 in the paper files)')):
        seconds = off + (every - off) / share
        print(f'| {label} | {seconds:.3f} (computed) | {seconds / off:.3f} |')


def monitor_cost(args: argparse.Namespace, batch: Dict[str, torch.Tensor], ranker_path: str) -> Dict[str, float]:
    """Median seconds per step of RankSRGANModel with the monitor off and on every step, their steps interleaved
    (so that a slow phase of the machine hits both alike)."""
    models = {}
    for name, monitor in (('off', {'enabled': False}), ('every step', {'every': 1})):
        options = model_options('RankSRGANModel', args.gt_size, args.device, ranker_path)
        options['train']['ranker_monitor'] = monitor
        torch.manual_seed(0)
        models[name] = build_model(options)
    times: Dict[str, List[float]] = {name: [] for name in models}
    for step in range(1, args.steps * 2 + 1):
        for name, model in models.items():
            times[name].append(one_step_seconds(model, batch, step, args.device))
    return {name: statistics.median(values[2:]) for name, values in times.items()}


if __name__ == '__main__':
    sys.exit(main())
