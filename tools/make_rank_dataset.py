"""Build a RankSRGAN rank dataset (no MATLAB), or merge the shards of one.

Build (options from a YAML file, flags override it):
    python tools/make_rank_dataset.py -opt options/rank_dataset_DF2K_NIQE.yml [--overwrite]
    python tools/make_rank_dataset.py --hr datasets/DIV2K/HR --output datasets/rank_demo \
        --levels bicubic,sharpened,hr --patch-size 296 --stride 148
A killed build resumes when the same command is run again. Several processes (one GPU each when there
are GPUs) share one build when torch's launcher starts the tool; rank 0 writes the result:
    torchrun --nproc_per_node=4 tools/make_rank_dataset.py -opt options/rank_dataset_DF2K_NIQE.yml
For a cluster array job, add ``--num-shards N --shard-index i`` (and a per-shard ``--output``), then merge:
    python tools/make_rank_dataset.py merge --inputs out_0 out_1 ... --output datasets/rank_DF2K_niqe
"""
import argparse
import logging
import sys
from typing import Any, Callable, Dict, List, Optional

import yaml

from ranksrgan_plugin.data.rank_dataset_format import RankDatasetError
from ranksrgan_plugin.rank_dataset import (
    BUILTIN_UPSCALERS,
    PATCH_METRIC_REGISTRY,
    BuildProcesses,
    LevelError,
    RankDatasetBuilder,
    RankDatasetBuildError,
    close_processes,
    launched_processes,
    load_config,
    merge_rank_datasets,
)
from ranksrgan_plugin.utils.option_keys import UnknownOptionError


def levels_from_names(names: str) -> List[Dict[str, Any]]:
    """``bicubic,sharpened,hr`` -> built-in upscaler levels (and the ground truth for ``hr``)."""
    levels = []
    for name in filter(None, (n.strip() for n in names.split(','))):
        if name == 'hr':
            levels.append({'name': 'hr', 'type': 'hr'})
        elif name in BUILTIN_UPSCALERS:
            levels.append({'name': name, 'type': 'builtin', 'method': name})
        else:
            raise SystemExit(f'--levels: {name!r} is not hr or a builtin upscaler {sorted(BUILTIN_UPSCALERS)}; '
                             'configure network and folder levels in the YAML file.')
    return levels


def metric_options(name: str, ma_model: Optional[str] = None) -> Dict[str, Any]:
    """The ``metric`` option for ``--metric``: Y channel, 4-pixel shave (the paper's protocol)."""
    options: Dict[str, Any] = {'type': name, 'crop_border': 4}
    if name in ('ma', 'pi') and ma_model:
        options['model_path'] = ma_model
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--config', help='YAML file of rank-dataset options')
    parser.add_argument('--hr', help='HR images: folder or BasicSR LMDB')
    parser.add_argument('--lr', help='LR images folder (default: MATLAB bicubic of HR)')
    parser.add_argument('--output', help='output folder')
    parser.add_argument('--scale', type=int)
    parser.add_argument('--levels', help='comma-separated built-in levels, e.g. bicubic,sharpened,hr')
    parser.add_argument('--patch-size', type=int)
    parser.add_argument('--stride', type=int)
    parser.add_argument('--max-patches-per-image', type=int)
    parser.add_argument('--sharpness-threshold', type=float)
    parser.add_argument('--no-sharpness-filter', action='store_true', help='keep every location (threshold None)')
    parser.add_argument('--min-gap', type=float)
    parser.add_argument('--val-fraction', type=float)
    parser.add_argument('--seed', type=int)
    parser.add_argument('--metric', choices=PATCH_METRIC_REGISTRY.names(),
                        help='label metric (default niqe, Y, shave 4)')
    parser.add_argument('--ma-model', help="Ma et al.'s model.mat, for --metric ma|pi (else $RANKSRGAN_MA_MODEL)")
    parser.add_argument('--storage', choices=['lmdb', 'folder'])
    parser.add_argument('--device', help='torch device, e.g. cpu, cuda, cuda:1 (default: CUDA if available)')
    parser.add_argument('--num-shards', type=int)
    parser.add_argument('--shard-index', type=int)
    parser.add_argument('--io-threads', type=int, help='threads writing patches (default: the cores, at most 8)')
    parser.add_argument('--overwrite', action='store_true', help='replace a finished dataset in --output')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def build_main(argv: Optional[List[str]] = None,
               processes: Optional[BuildProcesses] = None) -> Optional[Dict[str, Any]]:
    args = build_parser().parse_args(argv)
    config = {}
    if args.config:
        with open(args.config, encoding='utf-8') as f:
            config = yaml.safe_load(f) or {}
    overrides = {name: getattr(args, name) for name in (
        'hr', 'lr', 'output', 'scale', 'patch_size', 'stride', 'max_patches_per_image', 'sharpness_threshold',
        'min_gap', 'val_fraction', 'seed', 'storage', 'device', 'num_shards', 'shard_index', 'io_threads')}
    if args.levels:
        overrides['levels'] = levels_from_names(args.levels)
    if args.metric:
        overrides['metric'] = metric_options(args.metric, args.ma_model)
    cfg = load_config(config, source=args.config or 'make_rank_dataset options', **overrides)
    if args.no_sharpness_filter:
        cfg['sharpness_threshold'] = None
    return RankDatasetBuilder(cfg, overwrite=args.overwrite, progress=not args.no_progress,
                              processes=processes).run()


def merge_main(argv: List[str]) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description='Merge the shards of one rank dataset build.')
    parser.add_argument('--inputs', nargs='+', required=True, help='the shard output folders')
    parser.add_argument('--output', required=True)
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    return merge_rank_datasets(args.inputs, args.output, overwrite=args.overwrite)


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['merge']:
        manifest = run_reporting_errors(merge_main, argv[1:])
    else:
        processes = launched_processes()  # torchrun / srun: one process per rank, else a single one
        # the builder logs through basicsr's get_root_logger, which sets INFO only when given a log file
        logging.getLogger('ranksrgan_plugin').setLevel(logging.INFO if processes.is_main else logging.WARNING)
        manifest = run_reporting_errors(build_main, argv, processes)
        close_processes(processes)
    for split, summary in (manifest or {}).get('splits', {}).items():
        print(f"{split}: {summary['num_keys']} keys from {summary['num_images']} images")


def run_reporting_errors(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``; a bad input or option ends the tool with its message on stderr (exit status 2)."""
    try:
        return function(*args)
    except (RankDatasetBuildError, RankDatasetError, LevelError, UnknownOptionError, FileNotFoundError,
            yaml.YAMLError) as error:
        print(f'make_rank_dataset: error: {error}', file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == '__main__':
    main()
