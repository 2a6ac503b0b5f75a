"""Train an MMagic config with the plugin loaded: MMagic's ``tools/train.py`` plus CPU (gloo) DDP.

``python tools/mmagic_train.py <config> [--work-dir DIR] [--resume] [--amp] [--cfg-options k=v ...]
[--launcher none|pytorch|slurm|mpi]``; the flags are those of ``mmagic/.mim/tools/train.py``. With
CUDA, every launcher is mmengine's own (NCCL). Without CUDA, ``--launcher pytorch`` under torchrun
runs DDP on the CPU over gloo, which upstream cannot: mmengine's launchers call
``torch.cuda.set_device`` (mmengine 0.10.7), and DDP of a CPU module needs ``device_ids=None``.
"""
import argparse
import os
import os.path as osp
from datetime import timedelta
from typing import Any, Dict, List, Optional

import torch
from mmengine.config import Config, DictAction

import ranksrgan_plugin.mmagic  # noqa: F401  (mmcv placeholders, plugin registration)

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


def init_cpu_distributed(cfg: Config) -> bool:
    """Without CUDA and with the pytorch launcher, start gloo DDP; True when it did.

    Initialises the process group from torchrun's environment before the Runner (which then skips
    its own CUDA-only launcher), sets ``env_cfg.dist_cfg.backend='gloo'`` and ``device_ids=None``
    in ``model_wrapper_cfg`` (MMagic's GAN configs use ``MMSeparateDistributedDataParallel``,
    which leaves the frozen Ranker and other parameter-free or frozen parts unwrapped).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if not torch.distributed.is_initialized():
        timeout = dist_cfg.get('timeout')
        torch.distributed.init_process_group(
            backend='gloo', **({'timeout': timedelta(seconds=timeout)} if timeout else {}))
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg
    return True


def train(cfg: Config):
    """Build mmengine's Runner from ``cfg`` and train; returns the Runner."""
    from mmengine.runner import Runner

    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def main(argv: Optional[List[str]] = None) -> None:
    train(build_config(parse_args(argv)))
    if torch.distributed.is_initialized():
        # mmengine leaves the process group up; a gloo worker that exits with it alive can abort in its
        # thread teardown ("terminate called without an active exception", seen once in the 2-process test)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
