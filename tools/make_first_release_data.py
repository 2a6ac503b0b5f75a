"""Make the first release's training data (RankSRGAN 5c09d6c, RankSRGAN_NIQE.json) from DIV2K's train HR images.

    python tools/make_first_release_data.py --hr datasets/DIV2K/DIV2K_train_HR --out datasets/DIV2K [--workers 8]

writes ``<out>/DIV2K800_sub.lmdb`` (480x480 sub-images, step 240, as the original's extract_subimgs_single.py)
and ``<out>/DIV2K800_sub_bicLRx4.lmdb`` (each sub-image's own MATLAB-bicubic x4 LR, as its generate_mod_LR_bic.m),
the two BasicSR LMDBs that options/train_RankSRGAN_NIQE_first_release.yml trains on. A killed run leaves only
``<out>/DIV2K800_sub.lmdb.partial``; run the same command again. An existing complete pair is kept unless
``--overwrite``.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

import ranksrgan_plugin  # noqa: F401  (compat fixes and registration before basicsr)
from ranksrgan_plugin.data.first_release_data import (
    CROP_SIZE,
    GT_LMDB_NAME,
    SCALE,
    STEP,
    THRESHOLD,
    FirstReleaseDataError,
    SubImageParams,
    build_first_release_data,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hr', default='datasets/DIV2K/DIV2K_train_HR', help='folder of the HR images')
    parser.add_argument('--out', default='datasets/DIV2K', help='folder of the two LMDBs')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1),
                        help='processes cutting and resizing (default: the cores, at most 8)')
    parser.add_argument('--crop-size', type=int, default=CROP_SIZE, help=f'sub-image size (default {CROP_SIZE})')
    parser.add_argument('--step', type=int, default=STEP, help=f'grid step (default {STEP})')
    parser.add_argument('--threshold', type=int, default=THRESHOLD,
                        help=f'a last sub-image flush with the edge when more than this is left (default {THRESHOLD})')
    parser.add_argument('--scale', type=int, default=SCALE, help=f'LR scale (default {SCALE})')
    parser.add_argument('--gt-name', default=GT_LMDB_NAME, help=f'GT database name (default {GT_LMDB_NAME})')
    parser.add_argument('--lq-name', help='LR database name (default DIV2K800_sub_bicLRx<scale>.lmdb)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing pair of databases')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv: Optional[List[str]] = None) -> dict:
    """Parse ``argv`` and build; a bad input ends the tool with its message on stderr (exit status 2)."""
    args = build_parser().parse_args(argv)
    # the builder logs through basicsr's get_root_logger, which sets INFO only when given a log file
    logging.getLogger('ranksrgan_plugin').setLevel(logging.INFO)
    params = SubImageParams(args.crop_size, args.step, args.threshold, args.scale)
    try:
        summary = build_first_release_data(args.hr, args.out, params, workers=args.workers, overwrite=args.overwrite,
                                           gt_name=args.gt_name, lq_name=args.lq_name,
                                           progress=not args.no_progress)
    except (FirstReleaseDataError, OSError) as error:
        print(f'make_first_release_data: error: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{summary['num_keys']} sub-images of {summary['num_images']} images: {summary['gt']}, {summary['lq']}")
    return summary


if __name__ == '__main__':
    main()
