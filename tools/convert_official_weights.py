"""Convert official RankSRGAN checkpoints (Rankers, generators, the rank-dataset levels' ESRGAN) to
the plugin's / BasicSR's architectures.

    python tools/convert_official_weights.py Ranker_NIQE.pth experiments/pretrained_models/Ranker_NIQE_basicsr.pth
    python tools/convert_official_weights.py SRResNet_bicx4_in3nf64nb16.pth \
        experiments/pretrained_models/SRResNet_bicx4_in3nf64nb16_basicsr.pth
    python tools/convert_official_weights.py ESRGAN_SuperSR.pth experiments/pretrained_models/ESRGAN_SuperSR_basicsr.pth

Detects the layout (Ranker: mmsr names or features.N; generator: mmsr names or model.N; ESRGAN's
RRDBNet: mmsr names or model.N, to BasicSR's RRDBNet), refuses an unknown one, checks that the
result loads strictly, writes a BasicSR checkpoint (``{'params': state_dict}``) and prints the
matching ``network_r`` / ``network_g`` options. (A rank dataset's ``network`` level and
tools/inference.py also read the official files directly, converting on load.)
"""
import argparse
import os
import os.path as osp

import torch
import yaml

from ranksrgan_plugin.checkpoints import UnknownCheckpointLayout, convert_official_checkpoint
from ranksrgan_plugin.utils.atomic_files import save_torch_atomically


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='official checkpoint (.pth)')
    parser.add_argument('output', help='converted BasicSR checkpoint to write')
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args()
    if not osp.isfile(args.input):
        raise SystemExit(f'{args.input} does not exist.')
    if osp.exists(args.output) and not args.overwrite:
        raise SystemExit(f'{args.output} exists; pass --overwrite to replace it.')
    try:
        layout, options, net = convert_official_checkpoint(torch.load(args.input, map_location='cpu',
                                                                      weights_only=True))
    except UnknownCheckpointLayout as error:
        raise SystemExit(f'{args.input}: {error}') from None
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    save_torch_atomically({'params': net.state_dict()}, args.output)
    section = 'network_r' if layout.startswith('ranker') else 'network_g'
    print(f'{args.input}: layout {layout} -> {args.output}\n')
    print(yaml.safe_dump({section: options}, sort_keys=False))


if __name__ == '__main__':
    main()
