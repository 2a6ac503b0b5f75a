"""The paper's road in one command: raw DIV2K / Flickr2K -> rank dataset -> Ranker -> RankSRGAN -> Table 1.

    python tools/reproduce.py --data datasets                  # the NIQE road (RankSRGAN-N), resumable
    python tools/reproduce.py --data datasets --check          # only list what is missing, exit status 2 if any
    python tools/reproduce.py --data datasets --variant ma --ma-model model.mat --gpus 4
    python tools/reproduce.py --data datasets --from ranksrgan # run RankSRGAN (and what follows) again
    python tools/reproduce.py --rehearsal                      # the same stages on the CPU, on a small layout

Stages: check -> rank_dataset -> ranker -> ranksrgan -> test -> report. The check runs first every
time and writes nothing when an input is missing. Running the same command again skips finished
stages and continues a killed one. Writes <output>/<variant>/: table1.md, table1.json, the figures,
state.json, the options each stage ran (options/) and their logs (logs/); experiments under
<root>/experiments/ as BasicSR does. See docs/reproduce.md.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
from ranksrgan_plugin.reproduce import STAGES, VARIANTS, PaperRoad, RoadLayout, RoadPlan, StageFailed
from ranksrgan_plugin.reproduce.layout import TEST_SETS

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default='datasets', help='datasets root, laid out as docs/reproduce.md (default '
                        'datasets; the rehearsal makes its own)')
    parser.add_argument('--pretrained', default='experiments/pretrained_models',
                        help="the authors' weights files and vgg19-dcbb9e9d.pth (default "
                        'experiments/pretrained_models)')
    parser.add_argument('--variant', choices=sorted(VARIANTS), default='niqe', help='RankSRGAN-N (default), -M, '
                        '-PI or -HR')
    parser.add_argument('--gpus', type=int, default=1, help='processes per stage (torchrun); the per-GPU batch '
                        "keeps the original's total batch")
    parser.add_argument('--ma-model', help="Ma et al.'s model.mat (the ma and pi variants)")
    parser.add_argument('--test-sets', nargs='+', choices=[s for s in TEST_SETS if s != 'PIRM_test'], default=[],
                        help='test sets that must exist (PIRM test always; the others are tested when present)')
    parser.add_argument('--output', help='report, state, options and logs go to <output>/<variant> (default '
                        'results/reproduce, the rehearsal results/rehearsal)')
    parser.add_argument('--root', help='BasicSR root: experiments/ and tb_logger/ go under it (default the '
                        'repository, the rehearsal its output)')
    parser.add_argument('--check', action='store_true', help='only check the inputs')
    parser.add_argument('--from', dest='start', choices=STAGES[1:], help='run this stage and the later ones again')
    parser.add_argument('--until', choices=STAGES[1:], default='report', help='stop after this stage')
    parser.add_argument('--rehearsal', action='store_true', help='the same stages on a small layout of bundled '
                        'photos with random-weight stand-ins, 2 iterations per training stage (CPU, minutes)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser


def layout_from_args(args: argparse.Namespace) -> RoadLayout:
    output = args.output or osp.join(REPO_ROOT, 'results', 'rehearsal' if args.rehearsal else 'reproduce')
    data, pretrained = osp.abspath(args.data), osp.abspath(args.pretrained)
    if args.rehearsal:
        data, pretrained = osp.join(output, 'datasets'), osp.join(output, 'pretrained')
    return RoadLayout(repo=REPO_ROOT, variant=VARIANTS[args.variant], data=data, pretrained=pretrained,
                      output=osp.abspath(osp.join(output, args.variant)),
                      root=osp.abspath(args.root or (output if args.rehearsal else REPO_ROOT)),
                      gpus=args.gpus, ma_model=args.ma_model, test_sets=tuple(args.test_sets))


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    layout = layout_from_args(args)
    plan = RoadPlan()
    if args.rehearsal:
        from ranksrgan_plugin.reproduce.rehearsal import make_rehearsal_data, rehearsal_plan, write_stand_ins

        make_rehearsal_data(layout.data, osp.join(osp.dirname(layout.data), 'photos'))
        write_stand_ins(layout.pretrained)
        plan = rehearsal_plan()
    try:
        road = PaperRoad(layout, plan, show_bars=not args.no_progress)
        return road.run(args.start, args.until, check_only=args.check)
    except (StageFailed, ValueError) as error:
        print(f'reproduce: error: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
