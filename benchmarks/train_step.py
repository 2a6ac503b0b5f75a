"""Cost of RankSRGAN's frozen Ranker: one training step of RankSRGANModel vs BasicSR's SRGANModel.

Same generator, discriminator, perceptual/GAN losses, batch and GT size, same machine, one run;
prints the median seconds per ``optimize_parameters`` and their ratio (target: <= 1.25 at GT 128
on CPU: the Ranker should cost about one extra discriminator pass). The perceptual VGG19 has
random weights here (timing only, no download).

    python benchmarks/train_step.py [--gt-size 128] [--batch 4] [--steps 7] [--device cpu|cuda]
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


def time_steps(model, batch: Dict[str, torch.Tensor], steps: int, device: str) -> List[float]:
    times = []
    for step in range(1, steps + 1):
        model.feed_data(batch)
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.optimize_parameters(step)
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[2:]  # the first two steps warm up allocators and kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--gt-size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--steps', type=int, default=7)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = {'lq': torch.rand(args.batch, 3, args.gt_size // 4, args.gt_size // 4),
             'gt': torch.rand(args.batch, 3, args.gt_size, args.gt_size)}
    with tempfile.TemporaryDirectory() as tmp:
        ranker_path = os.path.join(tmp, 'ranker.pth')
        torch.save({'params': RankerVGG(depth=12).state_dict()}, ranker_path)
        results = {}
        for model_type in ('SRGANModel', 'RankSRGANModel'):
            torch.manual_seed(0)
            model = build_model(copy.deepcopy(model_options(model_type, args.gt_size, args.device, ranker_path)))
            results[model_type] = statistics.median(time_steps(model, batch, args.steps, args.device))
    ratio = results['RankSRGANModel'] / results['SRGANModel']
    threads = torch.get_num_threads() if args.device == 'cpu' else '-'
    print(f'\ndevice {args.device} (torch threads: {threads}), GT {args.gt_size}, batch {args.batch}, '
          f'median of {args.steps - 2} steps')
    print('| model | s / optimize_parameters | ratio vs SRGANModel |\n|---|---|---|')
    print(f"| SRGANModel (BasicSR) | {results['SRGANModel']:.3f} | 1.00 |")
    print(f"| RankSRGANModel (ours) | {results['RankSRGANModel']:.3f} | {ratio:.2f} |")


if __name__ == '__main__':
    main()
