"""NIQE / PSNR / SSIM (and Ma / PI) of folders of SR outputs against an HR folder, as in the paper.

    python tools/evaluate.py --hr datasets/Set14/HR \
        --sr results/SRResNet results/SRGAN results/ESRGAN results/RankSRGAN \
        --output results/eval_Set14 [--suffix _rlt] [--ma-model model.mat]

Writes ``<output>/<name>.csv`` per folder (one row per image, then the mean) and
``<output>/summary.md`` (the means of all folders side by side), and prints the table. SR images are
matched to HR images by file stem, one to one: two images of one stem in a folder, or an image
without its partner, are refused (all listed) before any metric runs; ``--allow-missing`` scores the
pairs alone and the table counts ``N of M`` images. Y channel and a 4-pixel shave by default
(``--crop-border``); NIQE needs SR images with two full 96x96 blocks after the shave (e.g. 104x200).
"""
import argparse
import sys
from typing import List, Optional

import ranksrgan_plugin  # noqa: F401  (compat fixes and registration before basicsr)
from ranksrgan_plugin.evaluation import EvaluationError, evaluate_folders


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv``, evaluate, print the summary table; exit status 0, or 2 with a message on bad inputs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hr', required=True, help='folder of ground-truth HR images')
    parser.add_argument('--sr', required=True, nargs='+', help='one or more folders of SR outputs')
    parser.add_argument('--output', required=True, help='folder for the CSVs and summary.md')
    parser.add_argument('--names', nargs='+', help='table name of each SR folder (default: folder names)')
    parser.add_argument('--suffix', nargs='+', help='stem suffix of the SR files: one for all folders or one each')
    parser.add_argument('--crop-border', type=int, default=4, help='pixels shaved off each edge (default 4)')
    parser.add_argument('--rgb', action='store_true', help='PSNR/SSIM on BGR and NIQE on gray instead of Y')
    parser.add_argument('--ma-model', help="Ma et al.'s model.mat: adds Ma and PI")
    parser.add_argument('--device', help='device of NIQE / Ma (default: CUDA when available)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='score the stems both folders hold when an HR image has no SR image or the reverse '
                        '(the summary then counts "N of M" images); default: refuse, listing them')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    try:
        out = evaluate_folders(args.sr, args.hr, args.output, names=args.names, suffixes=args.suffix,
                               crop_border=args.crop_border, test_y_channel=not args.rgb, ma_model=args.ma_model,
                               device=args.device, progress=not args.no_progress,
                               allow_missing=args.allow_missing)
    except (EvaluationError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(out['table'], end='')
    print(f'Wrote {out["summary"]} and {", ".join(out["csv"].values())}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
