"""Cost of RankSRGAN's frozen Ranker: one training step of RankSRGANModel (one Ranker, and two: ``rankers:``) vs
BasicSR's SRGANModel, and of the Ranker-exploitation monitor (off and on every step, measured; one step in 10,
MMagic's default, and in 100, BasicSR's with the paper files' ``print_freq``, computed from those).

Same generator, discriminator, perceptual/GAN losses, batch and GT size, same machine, one run;
prints the median seconds per ``optimize_parameters`` and their ratio (target: <= 1.25 at GT 128
on CPU: the Ranker should cost about one extra discriminator pass). The perceptual VGG19 has
random weights here (timing only, no download).

    python benchmarks/train_step.py [--gt-size 128] [--batch 4] [--steps 7] [--device cpu|cuda]

With ``--precision`` (and ``--channels-last`` / ``--compile``): one RankSRGANModel and one RankerModel step per
configuration instead (``train.precision``, ``channels_last``, ``compile``), seconds per step and the ratio vs
fp32, same run; the Ranker step is the paper's (pairs of ``--ranker-batch`` patches of GT size, one pass per side):

    python benchmarks/train_step.py --precision fp32 bf16 --channels-last [--compile] --batch 8 --gt-size 296
"""
import argparse
import copy
import os
import statistics
import tempfile
import time
from typing import Any, Dict, List

import torch

import ranksrgan_plugin  # noqa: F401  (compat fixes first, registers the plugin)

# isort: split
from basicsr.models import build_model

from ranksrgan_plugin.archs import RankerVGG


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


def configurations(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """``{row name: train.* values}``: each precision, then channels_last and compile on the last one."""
    rows = {precision: {'precision': precision} for precision in args.precision}
    last = args.precision[-1]
    if args.channels_last:
        rows[f'{last} + channels_last'] = {'precision': last, 'channels_last': True}
    if args.compile:
        rows[f'{last}{" + channels_last" if args.channels_last else ""} + compile'] = {
            'precision': last, 'channels_last': args.channels_last, 'compile': True}
    return rows


def precision_table(args: argparse.Namespace, ranker_path: str) -> None:
    gan_batch = {'lq': torch.rand(args.batch, 3, args.gt_size // 4, args.gt_size // 4),
                 'gt': torch.rand(args.batch, 3, args.gt_size, args.gt_size)}
    pairs = {'img_a': torch.rand(args.ranker_batch, 3, args.gt_size, args.gt_size),
             'img_b': torch.rand(args.ranker_batch, 3, args.gt_size, args.gt_size),
             'label_a': torch.rand(args.ranker_batch), 'label_b': torch.rand(args.ranker_batch)}
    seconds: Dict[str, Dict[str, float]] = {}
    for row, values in configurations(args).items():
        seconds[row] = {}
        for name, options, batch in (
                ('RankSRGAN', model_options('RankSRGANModel', args.gt_size, args.device, ranker_path), gan_batch),
                ('Ranker', ranker_options(args.device, {}), pairs)):
            options['train'].update(values)
            torch.manual_seed(0)
            model = build_model(copy.deepcopy(options))
            seconds[row][name] = statistics.median(time_steps(model, batch, args.steps, args.device))
    reference = seconds[args.precision[0]]
    print(f'\ndevice {args.device}, GT {args.gt_size}, RankSRGAN batch {args.batch}, Ranker {args.ranker_batch} '
          f'pairs, median of {args.steps - 2} steps')
    print(f'| configuration | RankSRGAN s / step | ratio vs {args.precision[0]} | h for 500k | Ranker s / step | ratio '
          '| h for 400k |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    for row, values in seconds.items():
        print(f"| {row} | {values['RankSRGAN']:.3f} | {reference['RankSRGAN'] / values['RankSRGAN']:.2f}x | "
              f"{values['RankSRGAN'] * 500_000 / 3600:.1f} | {values['Ranker']:.3f} | "
              f"{reference['Ranker'] / values['Ranker']:.2f}x | {values['Ranker'] * 400_000 / 3600:.1f} |")
    print('(ratio: how many times faster than the first row; hours: the paper\'s iterations at this step time, '
          'training steps only)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--gt-size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--ranker-batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=7)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precision', nargs='+', choices=['fp32', 'bf16', 'fp16'],
                        help='the precision table instead of the Ranker-cost table')
    parser.add_argument('--channels-last', action='store_true', help='a row with channels_last')
    parser.add_argument('--compile', action='store_true', help='a row with torch.compile')
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.precision:
        with tempfile.TemporaryDirectory() as tmp:
            ranker_path = os.path.join(tmp, 'ranker.pth')
            torch.save({'params': RankerVGG(depth=12).state_dict()}, ranker_path)
            precision_table(args, ranker_path)
        return
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
    main()
