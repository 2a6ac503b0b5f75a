"""The paper's Figure 3/4 for trained Rankers on a rank set's validation split, as a PNG.

    python tools/plot_ranker.py --dataroot datasets/rank_DF2K_niqe/val \
        --weights experiments/Ranker_VGG12_NIQE/models/net_r_best.pth --opt options/train_Ranker_NIQE.yml \
        [--weights-regression experiments/<regression run>/models/net_r_best.pth] --output ranker_hist.png

Prints each Ranker's SROCC and pair accuracy; histograms of the labels and of each Ranker's scores
per level. Checkpoints: plugin (BasicSR or MMagic-exported), official or older ``features.N`` ones.
"""
import argparse
import json
import os.path as osp
from typing import List, Optional

import torch
import yaml

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
from basicsr.archs import build_network

from ranksrgan_plugin.checkpoints import load_ranker
from ranksrgan_plugin.metrics.ranker_evaluation import evaluate_ranker
from ranksrgan_plugin.metrics.ranker_plots import plot_ranker_histograms


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='a rank-set split (e.g. <rank set>/val)')
    parser.add_argument('--weights', required=True, help='the (margin) Ranker checkpoint')
    parser.add_argument('--weights-regression', help='optional: a "regression" Ranker checkpoint to show beside it')
    parser.add_argument('--opt', help='options YAML whose network_r builds the Ranker (default: RankerVGG depth 12)')
    parser.add_argument('--output', required=True, help='PNG to write')
    parser.add_argument('--device', default=None)
    args = parser.parse_args(argv)
    network_opt = {'type': 'RankerVGG', 'depth': 12}
    if args.opt:
        with open(args.opt, encoding='utf-8') as f:
            network_opt = yaml.safe_load(f)['network_r']
    with open(osp.join(args.dataroot, 'manifest.json'), encoding='utf-8') as f:
        manifest = json.load(f)
    results = {}
    for name, weights in (('Ranker', args.weights), ('regression Ranker', args.weights_regression)):
        if weights:
            net = load_ranker(build_network(dict(network_opt)), weights, option='--weights')
            results[name] = evaluate_ranker(net, args.dataroot, device=args.device)
            print(f"{name}: SROCC {results[name]['srocc']:.4f}, pair accuracy {results[name]['pair_accuracy']:.4f} "
                  f"({len(results[name]['scores'])} items)")
    plot_ranker_histograms(results, args.output, metric=manifest.get('metric', 'label'),
                           higher_is_better=manifest.get('higher_is_better', False))
    print(f'Histograms: {args.output}')


if __name__ == '__main__':
    with torch.no_grad():
        main()
