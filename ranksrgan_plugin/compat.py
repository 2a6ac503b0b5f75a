"""Workarounds for upstream defects, in one place.

Each function names the defect it works around and the versions it applies to. They are applied
once, when ``ranksrgan_plugin`` is imported (before the first ``import basicsr``), and each is a
no-op where the upstream code is already fixed.
"""
import contextlib
import importlib
import logging
import os
import os.path as osp
import sys
import types
from typing import Any, Dict, Iterator, Optional

import torch


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


def apply() -> None:
    """Apply the import-time workarounds (called by ``ranksrgan_plugin/__init__.py``)."""
    alias_torchvision_functional_tensor()


# --- MMagic side (ranksrgan_plugin.mmagic) ----------------------------------------------------------

MMCV_OPS_PLACEHOLDER_FLAG = '__ranksrgan_placeholder__'


class _MissingMMCVOp(torch.nn.Module):
    """Stands for a compiled mmcv op class: subclassing works (MMagic subclasses some at import), building raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f'{type(self).__name__} needs the compiled ops of full mmcv (mmcv.ops), which this '
                           'environment lacks (mmcv-lite); install full mmcv to use this MMagic model.')


def _missing_mmcv_function(name: str):
    def missing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f'mmcv.ops.{name} needs the compiled ops of full mmcv, which this environment lacks '
                           '(mmcv-lite); install full mmcv to use this MMagic model.')

    missing.__name__ = name
    return missing


# module name -> names that MMagic 1.2.0 imports from it at module level without a fallback
# (editors basicvsr_plusplus_net, edvr, tdan: mmcv.ops; stylegan1, stylegan2: the two submodules).
# Names MMagic imports inside try/except ImportError (conv2d, bias_act, ...) are left out on purpose,
# so that MMagic's own pure-PyTorch fallbacks are used.
_MMCV_OPS_NAMES = {
    'mmcv.ops': ('DeformConv2d', 'DeformConv2dPack', 'ModulatedDeformConv2d', 'deform_conv2d',
                 'modulated_deform_conv2d'),
    'mmcv.ops.fused_bias_leakyrelu': ('FusedBiasLeakyReLU', 'fused_bias_leakyrelu'),
    'mmcv.ops.upfirdn2d': ('upfirdn2d',),
}


def _mmcv_ops_placeholder(module_name: str) -> types.ModuleType:
    module = types.ModuleType(module_name, f'Placeholder for {module_name} (ranksrgan_plugin.compat): no compiled '
                                           'mmcv ops in this environment.')
    setattr(module, MMCV_OPS_PLACEHOLDER_FLAG, True)
    for name in _MMCV_OPS_NAMES[module_name]:
        if name[0].isupper():
            setattr(module, name, type(name, (_MissingMMCVOp,), {'__module__': module_name}))
        else:
            setattr(module, name, _missing_mmcv_function(name))
    return module


def install_mmcv_ops_placeholders() -> list:
    """Let ``import mmagic.models`` work without compiled mmcv ops (mmagic 1.2.0 with mmcv-lite 2.x).

    ``mmagic.models`` imports every editor, and five of them (basicvsr_plusplus_net, edvr, tdan,
    stylegan1, stylegan2) import ``mmcv.ops`` at module level; with mmcv-lite (no ``mmcv._ext``) that
    import fails, so no MMagic model can be built, SRGAN/ESRGAN included (they need no ops). Full
    mmcv must be compiled (about 45 minutes on 2 cores). Only when ``mmcv`` imports but ``mmcv.ops``
    does not, this puts placeholder modules for ``mmcv.ops``, ``mmcv.ops.fused_bias_leakyrelu`` and
    ``mmcv.ops.upfirdn2d`` into ``sys.modules`` (building a model that needs an op then raises a
    clear error) and logs one warning. With full mmcv, or without mmcv, nothing is touched.

    Returns:
        The module names installed (empty when nothing was done).
    """
    try:
        importlib.import_module('mmcv')
    except ImportError:
        return []  # no mmcv at all: MMagic's own import error is the right message
    try:
        importlib.import_module('mmcv.ops')
        return []
    except ImportError as error:
        reason = f'{type(error).__name__}: {error}'
    for name in _MMCV_OPS_NAMES:
        sys.modules[name] = _mmcv_ops_placeholder(name)
    parent = sys.modules['mmcv.ops']
    parent.__path__ = []  # a package, so that ``import mmcv.ops.upfirdn2d`` resolves from sys.modules
    sys.modules['mmcv'].ops = parent
    installed = list(_MMCV_OPS_NAMES)
    logging.getLogger('ranksrgan_plugin').warning(
        'mmcv.ops is unavailable (%s, e.g. mmcv-lite): installed placeholders for %s; MMagic models that need '
        'compiled ops (EDVR, TDAN, BasicVSR++, StyleGAN1/2) raise when built, SRGAN/ESRGAN are unaffected.',
        reason, ', '.join(installed))
    return installed


@contextlib.contextmanager
def mmagic_vgg_weights(weights_path: Optional[str]) -> Iterator[None]:
    """Make MMagic's ``PerceptualVGG`` (mmagic 1.2.0) load ``weights_path``, or no weights if None.

    Upstream ignores its ``pretrained`` argument (the loading call is commented out) and always calls
    ``torchvision.models.vgg<N>(pretrained=True)``, which downloads ImageNet weights into torch's hub
    cache: an unexplained network error offline, and no way to pick a file or an unpretrained VGG
    (``pretrained=None`` crashes on ``None.startswith``). Within this context the ``vgg`` module seen
    by ``mmagic.models.losses.perceptual_loss`` builds unpretrained VGGs and, with a path, loads
    that torchvision state_dict into them.
    """
    from mmagic.models.losses import perceptual_loss

    saved = perceptual_loss.vgg

    def constructor(name: str):
        def build(*args: Any, **kwargs: Any) -> torch.nn.Module:
            net = getattr(saved, name)(weights=None)
            if weights_path is not None:
                net.load_state_dict(torch.load(weights_path, map_location='cpu', weights_only=True))
            return net

        return build

    perceptual_loss.vgg = types.SimpleNamespace(**{
        name: constructor(name)
        for name in ('vgg11', 'vgg13', 'vgg16', 'vgg19', 'vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn')})
    try:
        yield
    finally:
        perceptual_loss.vgg = saved


def mmengine_checkpoint_globals() -> list:
    """What mmengine (0.10.x) pickles besides tensors: the message hub's HistoryBuffers (with bound
    methods, hence ``getattr``), numeric numpy scalars and arrays, schedulers' ``Counter``s and ``_codecs.encode``."""
    import codecs
    import collections

    import numpy as np
    from mmengine.logging import HistoryBuffer

    multiarray = np.core.multiarray
    numeric_dtypes = [type(np.dtype(code)) for code in np.typecodes['AllInteger'] + np.typecodes['AllFloat'] + '?']
    return [HistoryBuffer, np.ndarray, np.dtype, *numeric_dtypes, multiarray.scalar, multiarray._reconstruct,
            collections.Counter, codecs.encode, getattr]


def allow_mmengine_checkpoint_globals() -> None:
    """Make mmengine 0.10.7 read its own checkpoints again under torch >= 2.6 (``--resume``, ``load_from``).

    ``mmengine.runner.checkpoint.load_from_local`` calls ``torch.load`` without ``weights_only``;
    torch 2.6 made ``weights_only=True`` the default, and mmengine's checkpoints hold more than
    tensors (see :func:`mmengine_checkpoint_globals`), so resuming fails with an UnpicklingError.
    This re-registers mmengine's loader for local files (the ``''`` scheme) so that it loads with
    exactly those globals allowed, still under the safe loader; other loads are untouched.
    Idempotent; a no-op on torch without ``torch.serialization.safe_globals`` (< 2.5).
    """
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    if not hasattr(torch.serialization, 'safe_globals') or '' in _UPSTREAM.get('mmengine_loaders', {}):
        return

    def load_from_local_safely(filename: str, map_location: Any = None) -> Any:
        with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
            return load_from_local(filename, map_location)

    _UPSTREAM.setdefault('mmengine_loaders', {})[''] = load_from_local
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safely, force=True)
