"""Upscale a folder of images with a trained generator; PNGs out.

    # plugin checkpoint + architecture on the command line
    python tools/inference.py --input datasets/Set14/LR --output results/RankSRGAN \
        --checkpoint experiments/RankSRGAN_NIQE/models/net_g_latest.pth \
        --arch RankSRGANGenerator --arch-opt num_feat=64 num_block=16 upscale=4
    # plugin checkpoint + the training options' network_g
    python tools/inference.py --input LR --output SR --checkpoint net_g.pth --opt options/train_RankSRGAN_NIQE.yml
    # official RankSRGAN / SRResNet / ESRGAN weights: architecture read off the weights
    python tools/inference.py --input LR --output SR --checkpoint RankSRGAN_NIQE.pth --tile 128

``--tile N`` runs N x N LR tiles for large images (a memory measure): each tile gets ``--tile-pad``
pixels of context, by default (``auto``) the network's receptive-field radius, so the output equals
the untiled one (up to the float kernels' last-bit rounding: a rare pixel one grey level off); a
smaller pad is allowed (faster, less memory) with a warning, as seams may show.
``--device`` defaults to CUDA when available. The scale is measured from the network (one forward pass
of a 16x16 input); ``--scale`` other than it is refused. Outputs are named ``<stem><suffix>.png``:
two inputs of one stem (``x.png``, ``x.jpg``) are refused.
"""
import argparse
import sys
from typing import List, Optional, Union

import ranksrgan_plugin  # noqa: F401  (compat fixes and registration before basicsr)
from ranksrgan_plugin.inference import (
    GeneratorUpscaler,
    InferenceError,
    load_generator,
    network_options_from_yaml,
    parse_arch_options,
    upscale_folder,
)


def tile_pad_arg(value: str) -> Union[int, str]:
    """``auto`` or a pixel count >= 0 (argparse type of ``--tile-pad``)."""
    if value == 'auto':
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f'expected auto or a pixel count >= 0, got {value!r}')
    return int(value)


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` and upscale the folder; exit status 0, or 2 with a message on bad inputs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of LR images')
    parser.add_argument('--output', required=True, help='folder for the SR PNGs')
    parser.add_argument('--checkpoint', required=True, help='generator checkpoint (.pth)')
    net = parser.add_mutually_exclusive_group()
    net.add_argument('--arch', help='registered BasicSR arch name, e.g. RankSRGANGenerator')
    net.add_argument('--opt', help='BasicSR options YAML whose network_g describes the network')
    parser.add_argument('--arch-opt', nargs='*', default=[], metavar='KEY=VALUE', help='arguments of --arch')
    parser.add_argument('--param-key', help='checkpoint entry (default: params_ema, else params)')
    parser.add_argument('--scale', type=int, help='upscaling factor, checked against the one measured from the '
                        'network (a mismatch is refused); default: the measured one')
    parser.add_argument('--tile', type=int, default=0, help='LR tile size, 0 = whole image (default)')
    parser.add_argument('--tile-pad', type=tile_pad_arg, default='auto',
                        help='context pixels around each tile; auto (default): the receptive-field radius, '
                        'exact; smaller: seams may show (warned)')
    parser.add_argument('--batch-size', type=int, default=4, help='tiles per forward pass')
    parser.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: CUDA when available)')
    parser.add_argument('--suffix', default='', help='added to each output stem')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    try:
        if args.arch_opt and not args.arch:
            raise InferenceError('--arch-opt needs --arch.')
        network_opt = None
        if args.arch:
            network_opt = {'type': args.arch, **parse_arch_options(args.arch_opt)}
        elif args.opt:
            network_opt = network_options_from_yaml(args.opt)
        model, options = load_generator(args.checkpoint, network_opt, args.param_key)
        upscaler = GeneratorUpscaler(model, options, args.scale, args.tile, args.tile_pad, args.batch_size,
                                     args.device, args.checkpoint)
        written = upscale_folder(args.input, args.output, upscaler, args.suffix, not args.no_progress)
    except InferenceError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'Wrote {len(written)} image(s) (x{upscaler.scale}, {options["type"]}) to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
