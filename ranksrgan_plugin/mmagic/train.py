"""Train an MMagic config with the plugin loaded: MMagic's ``tools/train.py`` plus CPU (gloo) DDP.

``python tools/mmagic_train.py <config> [--work-dir DIR] [--resume] [--amp] [--cfg-options k=v ...]
[--launcher none|pytorch|slurm|mpi]``; the flags are those of ``mmagic/.mim/tools/train.py``. With
CUDA, every launcher is mmengine's own (NCCL). Without CUDA, ``--launcher pytorch`` under torchrun
runs DDP on the CPU over gloo, which upstream cannot: mmengine's launchers call
``torch.cuda.set_device`` (mmengine 0.10.7), and DDP of a CPU module needs ``device_ids=None``
(the workaround: ``ranksrgan_plugin.compat.mmagic.init_cpu_distributed``). The config's ``scale`` is
checked against the generator's measured factor before training (:func:`check_config_scale`).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

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
    check_config_scale(cfg, runner.model)
    runner.train()
    return runner


DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def declared_scales(cfg: Dict[str, Any]) -> List[Tuple[Any, str]]:
    """``[(scale, where)]`` of a config (as a dict): its top-level ``scale`` (which a config file passes on to its
    pipelines' ``SetValues`` and metrics' ``crop_border`` when it is read: a later ``--cfg-options scale=N``
    changes only itself) and every ``SetValues(dictionary=dict(scale=N))`` step of its dataloaders' pipelines
    (what ``PairedRandomCrop`` reads). A pipeline variable no dataloader uses is not looked at."""
    found = [(cfg['scale'], 'scale')] if 'scale' in cfg else []
    for key in DATALOADERS:
        found += _set_values_scales(cfg.get(key), key)
    return found


def _set_values_scales(node: Any, path: str) -> List[Tuple[Any, str]]:
    if isinstance(node, dict):
        dictionary = node.get('dictionary')
        found = ([(dictionary['scale'], f'{path}.dictionary.scale (SetValues)')]
                 if node.get('type') == 'SetValues' and isinstance(dictionary, dict) and 'scale' in dictionary else [])
        return found + [item for key, value in node.items() for item in _set_values_scales(value, f'{path}.{key}')]
    if isinstance(node, (list, tuple)):
        return [item for index, value in enumerate(node) for item in _set_values_scales(value, f'{path}[{index}]')]
    return []


def check_config_scale(cfg: Config, model: Any) -> None:
    """Refuse a config whose ``scale`` (:func:`declared_scales`) is not its generator's measured factor.

    Upstream reads data first and then fails in ``PairedRandomCrop`` (``Scale mismatches ...``, sizes only), in
    the pixel loss or in a metric on tensors of other shapes. Here: a
    :class:`~ranksrgan_plugin.utils.upscaler.ScaleError` naming the config file, the option and the generator
    before any data is read. A model without a ``generator`` (the Ranker's) is not checked.
    """
    from ranksrgan_plugin.utils.upscaler import ScaleError, infer_scale

    model = getattr(model, 'module', model)  # DDP
    generator, options = getattr(model, 'generator', None), cfg.get('model', {}).get('generator') or {}
    declared = declared_scales(cfg.to_dict())
    if generator is None or not declared:
        return
    name = f"model.generator ({options.get('type', type(generator).__name__)})"
    num_in_ch = int(options.get('in_channels', options.get('num_in_ch', 3)))
    was_training = generator.training
    try:
        measured = infer_scale(generator.eval(), num_in_ch, f'{cfg.filename}: {name}')
    finally:
        generator.train(was_training)
    for value, where in declared:
        if value != measured:
            raise ScaleError(f'{cfg.filename}: {where} = {value!r}, but its {name} upscales x{measured}: the data '
                             f'would be cropped and scored as x{value} against x{measured} outputs. Set scale = '
                             f'{measured} (in the config file, so that its pipelines and metrics follow), or give '
                             f'the generator the factor {value}.')


def main(argv: Optional[List[str]] = None) -> None:
    """Train the config of the command line ``argv``; the process group (CPU DDP) is closed after.

    A config whose scale is not its generator's (:func:`check_config_scale`, or a batch of another factor) ends
    with its message and exit status 2, no traceback.
    """
    from ranksrgan_plugin.utils.upscaler import ScaleError

    try:
        train(build_config(parse_args(argv)))
    except ScaleError as error:
        print(f'mmagic_train: {error}', file=sys.stderr)
        sys.exit(2)
    close_distributed()


if __name__ == '__main__':
    main()
