"""Train an MMagic config with the plugin loaded: MMagic's ``tools/train.py`` plus CPU (gloo) DDP.

``python tools/mmagic_train.py <config> [--work-dir DIR] [--resume] [--amp] [--cfg-options k=v ...]
[--launcher none|pytorch|slurm|mpi]``; the flags are those of ``mmagic/.mim/tools/train.py``. With
CUDA, every launcher is mmengine's own (NCCL). Without CUDA, ``--launcher pytorch`` under torchrun
runs DDP on the CPU over gloo, which upstream cannot: mmengine's launchers call
``torch.cuda.set_device`` (mmengine 0.10.7), and DDP of a CPU module needs ``device_ids=None``
(the workaround: ``ranksrgan_plugin.compat.mmagic.init_cpu_distributed``).
"""
import argparse
import os
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.config import Config, DictAction

import ranksrgan_plugin.mmagic  # noqa: F401  (mmcv placeholders, plugin registration)
from ranksrgan_plugin.compat.mmagic import close_distributed, init_cpu_distributed

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of MMagic's tools/train.py."""
    parser = argparse.ArgumentParser(description='Train an MMagic config (RankSRGAN plugin loaded).')
    parser.add_argument('config', help='config file, e.g. options/mmagic/ranksrgan_x4c64b16_1xb8-500k_div2k-niqe.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: the config\'s work_dir)')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint of work_dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config values: key=value')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied (work_dir: CLI, else the config's, else work_dirs/<name>)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg)
    if args.resume:
        cfg.resume = True
    return cfg


def enable_amp(cfg: Config) -> None:
    """Turn every ``OptimWrapper`` of the config (one, or one per submodule) into an ``AmpOptimWrapper``."""
    optim_wrapper = cfg.optim_wrapper
    wrappers: List[Dict[str, Any]] = [optim_wrapper] if 'type' in optim_wrapper else [
        value for value in optim_wrapper.values() if isinstance(value, dict) and 'type' in value]
    for wrapper in wrappers:
        if wrapper['type'] not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp needs OptimWrapper, the config has {wrapper["type"]}.')
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')


def train(cfg: Config):
    """Build mmengine's Runner from ``cfg`` and train; returns the Runner."""
    from mmengine.runner import Runner

    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def main(argv: Optional[List[str]] = None) -> None:
    """Train the config of the command line ``argv``; the process group (CPU DDP) is closed after."""
    train(build_config(parse_args(argv)))
    close_distributed()


if __name__ == '__main__':
    main()
