"""The paper's road in one command: raw DIV2K / Flickr2K -> rank dataset -> Ranker -> RankSRGAN -> Table 1.

    python tools/reproduce.py --data datasets                  # the NIQE road (RankSRGAN-N), resumable
    python tools/reproduce.py --data datasets --check          # only list what is missing, exit status 2 if any
    python tools/reproduce.py --data datasets --variant ma --ma-model model.mat --gpus 4
    python tools/reproduce.py --data datasets --from ranksrgan # run RankSRGAN (and what follows) again
    python tools/reproduce.py --data datasets --toolbox mmagic # RankSRGAN trained by MMagic (<output>/niqe_mmagic)
    python tools/reproduce.py --data datasets --fast           # bf16, channels_last, compile, fused Adam, raw cache
    python tools/reproduce.py --rehearsal                      # the same stages on the CPU, on a small layout

Stages: check -> rank_dataset -> ranker -> ranksrgan -> test -> report. The arguments are checked
first (exit status 2, nothing written: a --gpus that does not divide the original's total batches,
a file where a folder goes, --from a stage whose earlier stages' outputs are missing), then the
inputs, every time; nothing is written when either finds a problem. Running the same command again skips finished
stages and continues a killed one. Writes <output>/<variant>/: table1.md, table1.json, the figures,
state.json, the options each stage ran (options/) and their logs (logs/); experiments under
<root>/experiments/ as BasicSR does. See docs/reproduce.md.
"""
import argparse
import os.path as osp
import shlex
import signal
import sys
from typing import List, NoReturn, Optional, Sequence, Tuple

import ranksrgan_plugin  # noqa: F401  (compat fixes first: basicsr 1.4.2 cannot import without them)

# isort: split
from ranksrgan_plugin.reproduce import (
    STAGES,
    TOOLBOXES,
    VARIANTS,
    PaperRoad,
    RoadLayout,
    RoadPlan,
    StageFailed,
    road_folder,
)
from ranksrgan_plugin.reproduce.layout import TEST_SETS
from ranksrgan_plugin.utils.live_processes import LiveStageError
from ranksrgan_plugin.utils.logged_process import Stopped

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
PRETRAINED_DEFAULT = 'experiments/pretrained_models'


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments (``prog`` ``reproduce``, as its error messages begin)."""
    parser = argparse.ArgumentParser(prog='reproduce', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', help='datasets root, laid out as docs/reproduce.md (default datasets; the '
                        'rehearsal makes its own)')
    parser.add_argument('--pretrained', help="the authors' weights files and vgg19-dcbb9e9d.pth (default "
                        'experiments/pretrained_models; the rehearsal makes its own)')
    parser.add_argument('--variant', choices=sorted(VARIANTS), default='niqe', help='RankSRGAN-N (default), -M, '
                        '-PI or -HR')
    parser.add_argument('--toolbox', choices=TOOLBOXES, default='basicsr', help='which toolbox trains RankSRGAN '
                        '(default basicsr); the mmagic road writes to <output>/<variant>_mmagic')
    parser.add_argument('--gpus', type=int, default=1, help='processes per stage (torchrun); the per-GPU batch '
                        "keeps the original's total batch, so it must divide it (Ranker 16, RankSRGAN 8)")
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
    parser.add_argument('--fast', action='store_true', help="the speed options in every training stage (bf16, "
                        'channels_last, torch.compile on CUDA, fused Adam, the raw-image cache in <root>/raw_cache); '
                        "not the paper's fp32: the road writes to <output>/<variant>_fast and its report says so")
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser


def layout_from_args(args: argparse.Namespace) -> RoadLayout:
    """The road's folders (computed only: nothing is read or written)."""
    output = args.output or osp.join(REPO_ROOT, 'results', 'rehearsal' if args.rehearsal else 'reproduce')
    data, pretrained = osp.abspath(args.data or 'datasets'), osp.abspath(args.pretrained or PRETRAINED_DEFAULT)
    if args.rehearsal:
        data, pretrained = osp.join(output, 'datasets'), osp.join(output, 'pretrained')
    return RoadLayout(repo=REPO_ROOT, variant=VARIANTS[args.variant], data=data, pretrained=pretrained,
                      output=osp.abspath(road_folder(output, args.variant, args.toolbox, args.fast)),
                      root=osp.abspath(args.root or (output if args.rehearsal else REPO_ROOT)),
                      gpus=args.gpus, ma_model=args.ma_model, test_sets=tuple(args.test_sets),
                      toolbox=args.toolbox)


def folder_errors(args: argparse.Namespace, layout: RoadLayout) -> List[str]:
    """The path arguments that name a file where the road takes a folder (or given where nothing reads them)."""
    errors = []
    folders = [('--data', args.data, 'the datasets root, laid out as docs/reproduce.md'),
               ('--pretrained', args.pretrained, "the folder of the authors' weights files"),
               ('--output', args.output, "the folder of the road's report, state, options and logs"),
               ('--output', layout.output, f'the {args.variant} road\'s own folder under --output'),
               ('--root', args.root, 'the BasicSR root of experiments/ and tb_logger/')]
    for option, path, what in folders:
        if path and osp.exists(path) and not osp.isdir(path):
            errors.append(f'argument {option}: {path} is a file; it takes a folder: {what}.')
    if args.rehearsal:
        errors += [f'argument {option}: not read with --rehearsal, which makes its own under --output ({path}); '
                   f'leave {option} out, or leave out --rehearsal to run the road on {given}.'
                   for option, given, path in (('--data', args.data, layout.data),
                                               ('--pretrained', args.pretrained, layout.pretrained)) if given]
    return errors


def argument_errors(args: argparse.Namespace, layout: RoadLayout) -> List[str]:
    """Every argument that cannot run the road, each as ``argument --X: ...`` (empty when all are fine)."""
    errors = folder_errors(args, layout)
    if args.ma_model and not layout.variant.needs_ma:
        errors.append(f'argument --ma-model: the {args.variant} road reads no model.mat (the ma and pi variants '
                      f'do); leave --ma-model out, or add --variant ma / pi.')
    elif args.ma_model and not osp.isfile(args.ma_model):
        state = 'is a folder' if osp.isdir(args.ma_model) else 'does not exist'
        errors.append(f"argument --ma-model: {args.ma_model} {state}; it takes Ma et al.'s model.mat file "
                      '(model.mat at the root of https://github.com/chaoma99/sr-metric).')
    gpus = layout.gpus_problem()
    if gpus:
        errors.append(f'argument --gpus: {gpus}')
    if args.start and STAGES.index(args.until) < STAGES.index(args.start):
        errors.append(f'argument --until: {args.until} comes before --from {args.start} (stages: '
                      f'{" -> ".join(STAGES[1:])}); give --until {args.start} or a later stage.')
    return errors


def command_line(args: argparse.Namespace, **changes: object) -> str:
    """The command of ``args`` with ``changes`` (None: left out), its options in their order of the parser."""
    parser = build_parser()
    words = ['python', 'tools/reproduce.py']
    for dest, value in {**vars(args), 'check': False, **changes}.items():
        option = '--from' if dest == 'start' else '--' + dest.replace('_', '-')
        if value == parser.get_default(dest) or value in (None, False, []):
            continue
        words += [option] if value is True else [option, *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(words)


def start_error(args: argparse.Namespace, missing: Sequence[Tuple[str, str]]) -> str:
    """``--from`` refused: the earlier stages' missing outputs and the command that makes them."""
    earlier = STAGES[STAGES.index(args.start) - 1]
    return (f'argument --from: --from {args.start} reruns {args.start} and the stages after it from the outputs of '
            'the stages before it, and these are missing:\n'
            + ''.join(f'    {name}: {what}\n' for name, what in missing)
            + f'  make them first with\n    {command_line(args, start=None, until=earlier)}\n'
            f'  then run this command again (the same command without --from runs every unfinished stage in order '
            'and goes on).')


def fail(parser: argparse.ArgumentParser, errors: Sequence[str]) -> NoReturn:
    """argparse's way: the usage, then ``reproduce: error: ...`` per error; exit status 2."""
    parser.print_usage(sys.stderr)
    parser.exit(2, ''.join(f'{parser.prog}: error: {error}\n' for error in errors))


def plan_from_args(args: argparse.Namespace, layout: RoadLayout) -> RoadPlan:
    """The rehearsal's plan for the road's toolbox, else the paper's; with ``--fast`` its speed options on top."""
    plan = RoadPlan()
    if args.rehearsal:
        from ranksrgan_plugin.reproduce.rehearsal import rehearsal_plan

        plan = rehearsal_plan(toolbox=args.toolbox)
    if args.fast:
        import torch

        from ranksrgan_plugin.reproduce.fast import fast_plan

        plan = fast_plan(plan, layout, cuda=torch.cuda.is_available())
    return plan


def main(argv: Optional[List[str]] = None) -> int:
    """Run the road; the exit status (2: an argument or an input is wrong, 1: a stage failed or a live process
    already runs it, 128 + N: stopped by signal N, its stage's processes stopped with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    layout = layout_from_args(args)
    errors = argument_errors(args, layout)
    if errors:
        fail(parser, errors)
    try:
        road = PaperRoad(layout, plan_from_args(args, layout), show_bars=not args.no_progress)
        missing = road.missing_before(args.start)
        if missing:
            fail(parser, [start_error(args, missing)])
        if args.rehearsal:
            from ranksrgan_plugin.reproduce.rehearsal import make_rehearsal_data, write_stand_ins

            make_rehearsal_data(layout.data, osp.join(osp.dirname(layout.data), 'photos'))
            write_stand_ins(layout.pretrained)
        return road.run(args.start, args.until, check_only=args.check)
    except (StageFailed, LiveStageError, ValueError) as error:
        print(f'reproduce: error: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt as stopped:  # Stopped (SIGTERM, SIGHUP, SIGINT during a stage) or Ctrl-C between
        signum = stopped.signum if isinstance(stopped, Stopped) else signal.SIGINT
        print(f'reproduce: stopped ({str(stopped) or "SIGINT received"}); the state is saved: run the same command to '
              'continue', file=sys.stderr)
        return 128 + int(signum)


if __name__ == '__main__':
    sys.exit(main())
