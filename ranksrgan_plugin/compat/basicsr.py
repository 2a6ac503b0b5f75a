"""Workarounds for BasicSR 1.4.2 defects (the BasicSR side of :mod:`ranksrgan_plugin.compat`).

Each function names the defect it works around and what changes for a user of the host library.
:func:`alias_torchvision_functional_tensor` runs when ``ranksrgan_plugin`` is imported (before the
first ``import basicsr``); :func:`patch_basicsr_train` when the plugin's train / test entry points
start; the others where the plugin builds the affected object. Each is a no-op where upstream works.
This module imports nothing of BasicSR at module level (it must be importable before the alias).
"""
import contextlib
import importlib
import os
import os.path as osp
import sys
import types
from typing import Any, Dict, Iterator, Mapping, Optional

import torch
import yaml


def alias_torchvision_functional_tensor() -> None:
    """basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (basicsr/data/degradations.py).

    torchvision 0.17 renamed it ``_functional_tensor``; without the alias ``import basicsr`` fails.
    Fixed on BasicSR master after 1.4.2, never released.
    """
    old_name = 'torchvision.transforms.functional_tensor'
    if old_name in sys.modules:
        return
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


def load_resume_state_any_device(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Replacement for ``basicsr.train.load_resume_state`` (basicsr 1.4.2).

    Upstream calls ``torch.cuda.current_device()`` unconditionally, so ``--auto_resume`` and
    ``path.resume_state`` crash on a CPU-only machine; it also looks for ``experiments/<name>``
    relative to the working directory instead of the experiment's own ``training_states`` folder.
    Same behaviour otherwise: the newest ``<iter>.state`` wins and ``check_resume`` rewrites the
    ``pretrain_network_*`` paths.
    """
    from basicsr.utils import check_resume, scandir

    resume_state_path = opt['path'].get('resume_state')
    if opt.get('auto_resume'):
        state_dir = opt['path']['training_states']
        if osp.isdir(state_dir):
            iters = [int(name.split('.state')[0]) for name in scandir(state_dir, suffix='state', recursive=False)]
            if iters:
                resume_state_path = osp.join(state_dir, f'{max(iters)}.state')
                opt['path']['resume_state'] = resume_state_path
    if not resume_state_path:
        return None
    keep_frozen_network_paths(opt)
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
    resume_state = torch.load(resume_state_path, map_location=device, weights_only=False)
    check_resume(opt, resume_state['iter'])
    return resume_state


def keep_frozen_network_paths(opt: Dict[str, Any]) -> None:
    """Stop ``check_resume`` (basicsr 1.4.2) from redirecting a frozen network to a checkpoint it never saved.

    On resume, upstream rewrites ``path.pretrain_network_<x>`` to ``models/net_<x>_<iter>.pth`` for
    every ``network_<x>`` option, unless listed in ``path.ignore_resume_networks``. A model class
    lists the networks it only loads (RankSRGANModel's Ranker) in ``frozen_networks``.
    """
    from basicsr.utils.registry import MODEL_REGISTRY

    if opt.get('model_type') not in MODEL_REGISTRY:
        return
    frozen = getattr(MODEL_REGISTRY.get(opt['model_type']), 'frozen_networks', ())
    ignored = list(opt['path'].get('ignore_resume_networks') or [])
    opt['path']['ignore_resume_networks'] = ignored + [name for name in frozen if name not in ignored]


def init_dist_any_device(launcher: str, backend: str = 'nccl', **kwargs: Any) -> None:
    """Replacement for ``basicsr.utils.dist_util.init_dist`` as used by ``parse_options`` (basicsr 1.4.2).

    Upstream's pytorch launcher calls ``torch.cuda.set_device(rank % device_count())`` and NCCL,
    so ``torchrun ... --launcher pytorch`` dies on a CPU-only machine (division by zero). Without
    CUDA this initialises a gloo process group from torchrun's environment; with CUDA, or with the
    slurm launcher, it is upstream's function unchanged.
    """
    from basicsr.utils import dist_util

    if launcher == 'pytorch' and not torch.cuda.is_available():
        torch.distributed.init_process_group(backend='gloo', **kwargs)
    else:
        dist_util.init_dist(launcher, backend, **kwargs)


def model_to_device_any_device(self, net: torch.nn.Module) -> torch.nn.Module:
    """Replacement for ``BaseModel.model_to_device`` (basicsr 1.4.2).

    Upstream wraps with ``DistributedDataParallel(device_ids=[torch.cuda.current_device()])``,
    which fails on CPU; a CPU process group (gloo) needs ``device_ids=None``. CUDA: unchanged.
    """
    from torch.nn.parallel import DistributedDataParallel

    if self.opt['dist'] and self.device.type == 'cpu':
        return DistributedDataParallel(net.to(self.device), find_unused_parameters=self.opt.get(
            'find_unused_parameters', False))
    return _UPSTREAM['model_to_device'](self, net)


_UPSTREAM: Dict[str, Any] = {}


def patch_basicsr_train() -> None:
    """Install the fixes that concern BasicSR's training pipeline (see the functions above)."""
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    basicsr.train.load_resume_state = load_resume_state_any_device
    basicsr.utils.options.init_dist = init_dist_any_device
    if 'model_to_device' not in _UPSTREAM:
        _UPSTREAM['model_to_device'] = BaseModel.model_to_device
        BaseModel.model_to_device = model_to_device_any_device


@contextlib.contextmanager
def basicsr_vgg_weights(weights_path: Optional[str]) -> Iterator[None]:
    """Make BasicSR's ``VGGFeatureExtractor`` (basicsr 1.4.2) load ``weights_path``, or no weights if None.

    Upstream offers no choice: it loads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth``
    relative to the working directory if present, else asks torchvision to download ImageNet
    weights (an unexplained network error offline). Within this context the module-level path
    points at ``weights_path``; with None, torchvision's constructor builds an unpretrained net.
    """
    from basicsr.archs import vgg_arch

    saved = vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg
    if weights_path is None:
        vgg_arch.VGG_PRETRAIN_PATH = os.devnull + '.absent'
        vgg_arch.vgg = types.SimpleNamespace(**{
            name: (lambda constructor: lambda pretrained=False: constructor(weights=None))(getattr(saved[1], name))
            for name in ('vgg11', 'vgg13', 'vgg16', 'vgg19', 'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn')})
    else:
        vgg_arch.VGG_PRETRAIN_PATH = weights_path
    try:
        yield
    finally:
        vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg = saved


def check_perceptual_weights(perceptual_opt: Optional[Mapping[str, Any]]) -> None:
    """Fail early, saying where the file goes, when BasicSR's ``PerceptualLoss`` lacks its VGG weights.

    basicsr 1.4.2's ``PerceptualLoss`` (``type: PerceptualLoss`` in ``perceptual_opt``) downloads
    torchvision's ImageNet VGG when ``experiments/pretrained_models/`` lacks it: offline that is a
    bare network error deep in model building. For a host user: the same run, but a missing file
    raises ``MissingVGGWeightsError`` naming the two places to put it. The plugin's
    ``VGGPerceptualLoss`` does this itself; other loss types are not touched.
    """
    from ..losses.perceptual_loss import find_imagenet_vgg_weights

    if perceptual_opt and perceptual_opt.get('type') == 'PerceptualLoss':
        find_imagenet_vgg_weights(perceptual_opt.get('vgg_type', 'vgg19'))


def write_options_with(options_file: str, values: Mapping[str, Any], output: str,
                       header: Optional[str] = None) -> str:
    """A copy of a BasicSR options YAML with ``values`` (dotted keys, e.g. ``train.rank_opt.bias``) set.

    basicsr 1.4.2's ``--force_yml key=value`` parses values with its own ``_postprocess``, which reads
    a negative number (``-0.1``) as a string; a copy of the options file is the only way to set one.
    For a host user: the options file written to ``output`` (its first line the comment ``header``,
    by default naming the original and the keys set) is what BasicSR trains with. Returns ``output``.
    """
    with open(options_file, encoding='utf-8') as f:
        options = yaml.safe_load(f)
    for dotted, value in values.items():
        *parents, leaf = dotted.split('.')
        section = options
        for key in parents:
            section = section[key]
        section[leaf] = value
    os.makedirs(osp.dirname(osp.abspath(output)), exist_ok=True)
    with open(output, 'w', encoding='utf-8') as f:
        default = f'{osp.basename(options_file)} with {", ".join(values)} set'
        f.write(f'# {header or default}\n')
        yaml.safe_dump(options, f, sort_keys=False)
    return output
