"""Workarounds for MMagic 1.2.0 / mmengine 0.10.7 / mmcv-lite defects (the MMagic side of the compat package).

Each function names the defect it works around and what changes for a user of the host library.
:func:`apply` (called when ``ranksrgan_plugin.mmagic`` is imported, before anything imports
``mmagic.models``) imports ``mmagic.models`` with the mmcv ops placeholders in place (removed again
afterwards), installs mmengine's checkpoint loader and gives numpy back its error state from before
BasicSR's import; the others are used where the plugin builds or runs the affected object. Each is
a no-op where upstream works. Every workaround is listed, with the upstream defect, the version and the test
that pins it, in ``docs/workarounds.md``.
"""
import contextlib
import copy
import functools
import importlib
import logging
import os.path as osp
import sys
import types
from datetime import timedelta
from typing import Any, Callable, ContextManager, Dict, Iterator, Optional, Tuple

import torch

from . import basicsr as basicsr_compat

_UPSTREAM: Dict[str, Any] = {}


def apply() -> None:
    """Apply the import-time workarounds of the MMagic side (idempotent).

    ``mmagic.models`` is imported with the mmcv ops placeholders in place (:func:`mmcv_ops_placeholders`,
    removed again afterwards), mmengine's checkpoint loader gets its allowlist
    (:func:`allow_mmengine_checkpoint_globals`), the Runner's checkpoint errors and undecodable images
    name their file (:func:`name_checkpoint_in_mismatch_errors`, :func:`name_unreadable_images`), a bf16
    ``AmpOptimWrapper`` gets no gradient scaler (:func:`no_grad_scaler_without_fp16`) and
    numpy's error state is given back as it was before the plugin imported BasicSR
    (:func:`ranksrgan_plugin.compat.basicsr.undo_basicsr_seterr`).
    """
    with mmcv_ops_placeholders() as installed:
        if installed:
            importlib.import_module('mmagic.models')
    allow_mmengine_checkpoint_globals()
    name_checkpoint_in_mismatch_errors()
    name_unreadable_images()
    no_grad_scaler_without_fp16()
    basicsr_compat.undo_basicsr_seterr()


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


def _mmcv_ops_placeholder(module_name: str, error: ImportError) -> types.ModuleType:
    module = types.ModuleType(module_name, f'Placeholder for {module_name} (ranksrgan_plugin.compat): no compiled '
                                           'mmcv ops in this environment.')
    setattr(module, MMCV_OPS_PLACEHOLDER_FLAG, True)
    for name in _MMCV_OPS_NAMES[module_name]:
        if name[0].isupper():
            setattr(module, name, type(name, (_MissingMMCVOp,), {'__module__': module_name}))
        else:
            setattr(module, name, _missing_mmcv_function(name))

    def __getattr__(name: str) -> Any:
        # Any other name fails as ``import mmcv.ops`` itself does, with ModuleNotFoundError: MMagic's
        # ``try: from mmcv.ops import upfirdn2d / except ImportError: upfirdn2d = None`` fallbacks then
        # take effect, and so does mmcv's ``collect_env`` (it catches only ModuleNotFoundError).
        if name.startswith('__'):
            raise AttributeError(f'module {module_name!r} has no attribute {name!r}')
        raise ModuleNotFoundError(f'{error} (needed for {module_name}.{name}; ranksrgan_plugin placeholder)',
                                  name=getattr(error, 'name', None))

    module.__getattr__ = __getattr__
    return module


def install_mmcv_ops_placeholders() -> list:
    """Let ``import mmagic.models`` work without compiled mmcv ops (mmagic 1.2.0 with mmcv-lite 2.x).

    ``mmagic.models`` imports every editor, and five of them (basicvsr_plusplus_net, edvr, tdan,
    stylegan1, stylegan2) import ``mmcv.ops`` at module level; with mmcv-lite (no ``mmcv._ext``) that
    import fails, so no MMagic model can be built, SRGAN/ESRGAN included (they need no ops). Full
    mmcv must be compiled (about 45 minutes on 2 cores). Only when ``mmcv`` imports but ``mmcv.ops``
    does not, this puts placeholder modules for ``mmcv.ops``, ``mmcv.ops.fused_bias_leakyrelu`` and
    ``mmcv.ops.upfirdn2d`` into ``sys.modules`` (building a model that needs an op then raises a
    clear error; any other name raises the ``ModuleNotFoundError`` that ``import mmcv.ops`` raised,
    so that MMagic's own ``except ImportError`` fallbacks set their names to None as without the
    placeholders) and logs one warning. With full mmcv, or without mmcv, nothing is touched.
    :func:`apply` uses it only through :func:`mmcv_ops_placeholders`, i.e. for ``mmagic.models``' import.

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
        failure = error
    for name in _MMCV_OPS_NAMES:
        sys.modules[name] = _mmcv_ops_placeholder(name, failure)
    parent = sys.modules['mmcv.ops']
    parent.__path__ = []  # a package, so that ``import mmcv.ops.upfirdn2d`` resolves from sys.modules
    sys.modules['mmcv'].ops = parent
    installed = list(_MMCV_OPS_NAMES)
    logging.getLogger('ranksrgan_plugin').warning(
        'mmcv.ops is unavailable (%s: %s, e.g. mmcv-lite): importing mmagic.models with placeholders for %s; '
        'MMagic models that need compiled ops (EDVR, TDAN, BasicVSR++, StyleGAN1/2) raise when built, '
        'SRGAN/ESRGAN are unaffected.', type(failure).__name__, failure, ', '.join(installed))
    return installed


def remove_mmcv_ops_placeholders(installed: list) -> None:
    """Take the placeholders of :func:`install_mmcv_ops_placeholders` out of ``sys.modules`` (and ``mmcv.ops``).

    Afterwards ``import mmcv.ops`` fails as it does without the plugin; the MMagic modules imported
    meanwhile keep the placeholder classes and functions they imported.
    """
    for name in installed:
        if getattr(sys.modules.get(name), MMCV_OPS_PLACEHOLDER_FLAG, False):
            del sys.modules[name]
    mmcv = sys.modules.get('mmcv')
    if getattr(getattr(mmcv, 'ops', None), MMCV_OPS_PLACEHOLDER_FLAG, False):
        delattr(mmcv, 'ops')


@contextlib.contextmanager
def mmcv_ops_placeholders() -> Iterator[list]:
    """The mmcv ops placeholders (:func:`install_mmcv_ops_placeholders`) for the duration of the context.

    For a host user: ``mmagic.models`` imports on mmcv-lite (imported inside this context by
    :func:`apply`); after it, ``mmcv.ops`` is as without the plugin (``import mmcv.ops`` and
    ``mmcv.utils.collect_env()`` behave as upstream), and MMagic's ``try/except ImportError`` fallbacks
    hold what they hold without compiled ops (``upfirdn2d = None`` etc.). Yields the names installed.
    """
    installed = install_mmcv_ops_placeholders()
    try:
        yield installed
    finally:
        remove_mmcv_ops_placeholders(installed)


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


def allow_mmengine_checkpoint_globals() -> None:
    """Make mmengine 0.10.7 read its own checkpoints again under torch >= 2.6 (``--resume``, ``load_from``).

    ``mmengine.runner.checkpoint.load_from_local`` calls ``torch.load`` without ``weights_only``;
    torch 2.6 made ``weights_only=True`` the default, and mmengine's checkpoints hold more than
    tensors (see :func:`~ranksrgan_plugin.checkpoints.mmengine_checkpoint_globals`), so resuming fails
    with an UnpicklingError.
    This re-registers mmengine's loader for local files (the ``''`` scheme) so that it loads with
    exactly those globals allowed, still under the safe loader; other loads are untouched. For a host
    user: ``mmengine.runner.CheckpointLoader`` reads local checkpoints holding those types (anything
    else is refused, naming the file and the type), process-wide once ``ranksrgan_plugin.mmagic`` is
    imported; an empty, truncated or non-torch file raises ``UnreadableCheckpointError`` saying which
    (upstream: ``EOFError``, torch's zip error, ``KeyError: 101``).
    Idempotent; a no-op on torch without ``torch.serialization.safe_globals`` (< 2.5).
    """
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    if not hasattr(torch.serialization, 'safe_globals') or '' in _UPSTREAM.get('mmengine_loaders', {}):
        return

    def load_from_local_safely(filename: str, map_location: Any = None) -> Any:
        from ..checkpoints import read_mmengine_checkpoint

        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')  # upstream's message
        return read_mmengine_checkpoint(filename, map_location=map_location)

    _UPSTREAM.setdefault('mmengine_loaders', {})[''] = load_from_local
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safely, force=True)


def init_cpu_distributed(cfg: Any) -> bool:
    """Without CUDA and with the pytorch launcher, start gloo DDP; True when it did.

    mmengine 0.10.7's launchers call ``torch.cuda.set_device`` (so ``torchrun ... --launcher pytorch``
    dies on a CPU-only machine) and DDP of a CPU module needs ``device_ids=None``. This initialises
    the process group from torchrun's environment before the Runner (which then skips its own
    CUDA-only launcher), sets ``env_cfg.dist_cfg.backend='gloo'`` and ``device_ids=None`` in
    ``model_wrapper_cfg`` (MMagic's GAN configs use ``MMSeparateDistributedDataParallel``, which
    leaves the frozen Ranker and other parameter-free or frozen parts unwrapped). For a host user:
    CPU DDP works; with CUDA, or another launcher, the config is untouched.
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


def close_distributed() -> None:
    """Tear down the process group that mmengine 0.10.7 leaves up after training.

    A gloo worker that exits with it alive can abort in its thread teardown ("terminate called
    without an active exception", seen once in the 2-process test). For a host user: all ranks meet
    at a barrier and the group is destroyed after ``runner.train()``; nothing happens without one.
    """
    basicsr_compat.close_distributed()  # the same teardown as after BasicSR's pipelines


def perceptual_vgg_weights(perceptual_loss: Dict[str, Any]) -> Optional[str]:
    """The VGG weights file for MMagic's PerceptualLoss, from its ``pretrained`` option (which mmagic 1.2.0
    ignores: the option resolved for :func:`honour_perceptual_pretrained`).

    ``'torchvision://vgg<N>'`` (MMagic's default): torchvision's ImageNet file, found on disk or
    downloaded, else ``MissingVGGWeightsError`` saying where to put it; a path: that file; None: an
    unpretrained VGG (tests only).
    """
    from mmengine.logging import print_log

    from ..losses.vgg_weights import find_imagenet_vgg_weights

    pretrained = perceptual_loss.get('pretrained', 'torchvision://vgg19')
    if pretrained is None:
        print_log('PerceptualLoss: pretrained=None, the VGG has random weights (meant for tests).',
                  logger='current', level=logging.WARNING)
        return None
    if pretrained.startswith('torchvision://'):
        return find_imagenet_vgg_weights(pretrained[len('torchvision://'):], 'model.perceptual_loss.pretrained')
    if not osp.isfile(pretrained):
        raise FileNotFoundError(f'PerceptualLoss: pretrained VGG weights file {pretrained} (model.perceptual_loss.'
                                'pretrained) does not exist.')
    return pretrained


def honour_perceptual_pretrained(perceptual_loss: Optional[Dict[str, Any]]
                                 ) -> Tuple[Optional[Dict[str, Any]], ContextManager[None]]:
    """(the PerceptualLoss config to give MMagic, the context to build the model in).

    mmagic 1.2.0's ``PerceptualLoss`` asserts ``vgg_type in pretrained`` and otherwise ignores
    ``pretrained`` (see :func:`mmagic_vgg_weights`). For an MMagic ``PerceptualLoss`` config this
    resolves its ``pretrained`` (:func:`perceptual_vgg_weights`), gives MMagic a copy with
    ``pretrained='torchvision://<vgg_type>'`` and a context that loads the resolved weights. For a
    host user: the ``pretrained`` option is honoured and nothing is downloaded when the file is on
    disk. Any other loss config is returned as it is, with a context that does nothing.
    """
    if not perceptual_loss or perceptual_loss.get('type') not in ('PerceptualLoss', 'mmagic.PerceptualLoss'):
        return perceptual_loss, contextlib.nullcontext()
    weights = perceptual_vgg_weights(perceptual_loss)
    perceptual_loss = copy.deepcopy(perceptual_loss)
    perceptual_loss['pretrained'] = f"torchvision://{perceptual_loss.get('vgg_type', 'vgg19')}"
    return perceptual_loss, mmagic_vgg_weights(weights)


LOAD_FROM_OPTION = "load_from / tools/test.py's checkpoint"
RESUME_OPTION = '--resume / resume=True'
GENERIC_LOAD_OPTION = f'{LOAD_FROM_OPTION} / --resume'  # what a model's own refusal says: it cannot tell which
_RESUMING: list = []  # the files Runner.resume is loading (a stack: resume calls load_checkpoint)


def name_checkpoint_in_mismatch_errors() -> None:
    """Name the file and the option in the refusal of a checkpoint loaded by mmengine's Runner (mmengine 0.10.7).

    ``Runner.load_checkpoint`` (``load_from``, MMagic's ``tools/test.py``) and ``Runner.resume`` load with
    ``strict=False``: a checkpoint of another network leaves the generator random with a warning, and a
    resume from another model's (or another discriminator's) checkpoint fails later in torch's size
    errors or ``KeyError: 'meta'``. RankSRGAN / RankESRGAN refuse such a state_dict
    (``CheckpointMismatchError``) but do not see the file's path; these wrappers put it at the head of
    the message with the option (``load_from`` or ``--resume``), and the Runner's checkpoint must fit the
    model (:func:`check_checkpoint_fits`). For a host user: the same methods; a ``load_from`` that loads
    nothing or part of a network, or a resume from a file that is not a training checkpoint of this model,
    raises ``CheckpointMismatchError`` naming the file (upstream: a model part left random with a
    warning among key lists, or a raw error); only the messages of those errors change.
    """
    import mmengine.runner.runner as runner_module
    from mmengine.runner import Runner

    from ..checkpoints import CheckpointMismatchError, UnreadableCheckpointError

    def naming(method: Callable[..., Any], resume: bool) -> Callable[..., Any]:
        @functools.wraps(method)
        def load(self: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
            option = RESUME_OPTION if resume or _RESUMING else LOAD_FROM_OPTION
            if resume:
                _RESUMING.append(str(filename))
            try:
                return method(self, filename, *args, **kwargs)
            except CheckpointMismatchError as error:
                message = str(error).replace('The checkpoint', str(filename), 1)
                raise CheckpointMismatchError(message.replace(GENERIC_LOAD_OPTION, option)) from None
            except UnreadableCheckpointError as error:
                if f'(named by {option})' in str(error):
                    raise
                raise UnreadableCheckpointError(f'{filename} (named by {option})', error.problem) from None
            finally:
                if resume:
                    _RESUMING.pop()
        return load

    for name in ('load_checkpoint', 'resume'):
        if name not in _UPSTREAM:
            _UPSTREAM[name] = getattr(Runner, name)
            setattr(Runner, name, naming(_UPSTREAM[name], resume=name == 'resume'))
    if 'load_checkpoint_to_model' not in _UPSTREAM:
        upstream = _UPSTREAM['load_checkpoint_to_model'] = runner_module._load_checkpoint_to_model

        @functools.wraps(upstream)
        def load_checkpoint_to_model(model: torch.nn.Module, checkpoint: Any, *args: Any, **kwargs: Any) -> Any:
            check_checkpoint_fits(model, checkpoint, resume=bool(_RESUMING))
            return upstream(model, checkpoint, *args, **kwargs)

        runner_module._load_checkpoint_to_model = load_checkpoint_to_model


def check_checkpoint_fits(model: torch.nn.Module, checkpoint: Any, resume: bool) -> None:
    """A checkpoint the Runner loads into ``model`` must fit its trainable parts (the children with parameters
    that train: generator, discriminator, Ranker ...).

    ``load_from``: each such part the file holds weights of must fit whole (a part it lacks stays as built),
    and at least one must be there. ``--resume``: the file must be an mmengine training checkpoint holding
    every such part. Raises ``CheckpointMismatchError`` starting with 'The checkpoint' (the Runner
    wrapper puts the file there). The check that mmengine 0.10.7's ``strict=False`` loading lacks
    (:func:`name_checkpoint_in_mismatch_errors`).
    """
    from mmengine.model import is_model_wrapper

    from ..checkpoints import CheckpointMismatchError, check_weights_fit, describe_weights, strip_module_prefix

    option = RESUME_OPTION if resume else LOAD_FROM_OPTION
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if resume and (not isinstance(meta, dict) or 'iter' not in meta or 'message_hub' not in checkpoint):
        raise CheckpointMismatchError(
            f'The checkpoint (named by {option}) is not an mmengine training checkpoint (no meta.iter / '
            f'message_hub): it is {describe_weights(checkpoint)}. --resume continues a run from an iter_<N>.pth its '
            'work_dir holds; to start from these weights, set load_from (or the generator\'s init_cfg) without '
            '--resume.')
    if not isinstance(checkpoint, dict):
        return  # mmengine's own error follows
    state = strip_module_prefix(checkpoint.get('state_dict', checkpoint))
    parts = [(name, child.module if is_model_wrapper(child) else child) for name, child in model.named_children()
             if any(param.requires_grad for param in child.parameters())]  # DDP-wrapped parts (separate DDP)
    held = [(name, child) for name, child in parts if any(key.startswith(name + '.') for key in state)]
    for name, child in (parts if resume else held or parts[:1]):
        weights = strip_module_prefix({key[len(name) + 1:]: value for key, value in state.items()
                                       if key.startswith(name + '.')})  # a DDP run saves generator.module.*
        check_weights_fit(child.state_dict(), weights, 'The checkpoint', option, checkpoint,
                          f'the {name} of {type(model).__name__} (keys {name}.*)')


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded (the message names the file and the pipeline key)."""


def name_unreadable_images() -> None:
    """Name the file when MMagic's ``LoadImageFromFile`` cannot decode it (mmagic 1.2.0).

    Upstream hands ``mmcv.imfrombytes`` the bytes of a corrupt or truncated file and fails inside
    OpenCV (``!_src.empty()`` in ``cvtColor``) or returns ``None``, naming no file. For a host user: the
    same transform; such a file raises :class:`UnreadableImageError` naming it and the pipeline key.
    """
    from mmagic.datasets.transforms.loading import LoadImageFromFile

    if 'load_image' in _UPSTREAM:
        return
    upstream = _UPSTREAM['load_image'] = LoadImageFromFile._load_image

    @functools.wraps(upstream)
    def _load_image(self: Any, filename: str) -> Any:
        try:
            img = upstream(self, filename)
        except Exception as error:  # OpenCV's cv2.error and whatever a backend raises on bad bytes
            raise UnreadableImageError(f'Cannot decode image {filename} (LoadImageFromFile key {self.key!r}): '
                                       f'{type(error).__name__}: {str(error).strip()[:200]}') from error
        if img is None:
            raise UnreadableImageError(f'Cannot decode image {filename} (LoadImageFromFile key {self.key!r}): a '
                                       'corrupt, truncated or non-image file.')
        return img

    LoadImageFromFile._load_image = _load_image


def any_device_amp_optim_wrapper() -> type:
    """mmengine's ``AmpOptimWrapper`` that also builds on the CPU (mmengine 0.10.7 asserts a GPU, NPU, MLU or MUSA).

    Upstream's mixed-precision context is already device-agnostic (``mmengine.runner.amp.autocast`` runs
    bf16 on the CPU); only its constructor refuses. The subclass builds it with that check passed; on the
    CPU its CUDA gradient scaler disables itself (a warning from torch): meant for bf16, which needs no
    scaler (with ``dtype='bfloat16'`` it gets none: :func:`no_grad_scaler_without_fp16`). For a host user: a
    new optimiser-wrapper type, ``AnyDeviceAmpOptimWrapper``; with an accelerator it is upstream's class unchanged.
    """
    from unittest import mock

    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper

    class AnyDeviceAmpOptimWrapper(AmpOptimWrapper):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            with mock.patch.object(amp_optimizer_wrapper, 'is_cuda_available', lambda: True):
                super().__init__(*args, **kwargs)

    return AnyDeviceAmpOptimWrapper


SCALERLESS_DTYPES = (torch.bfloat16, torch.float32, torch.float64)  # autocast dtypes that need no loss scaling


def no_grad_scaler_without_fp16() -> None:
    """Give mmengine's ``AmpOptimWrapper`` no live gradient scaler when its ``dtype`` is not float16.

    mmengine 0.10.7's ``AmpOptimWrapper.__init__`` builds a ``GradScaler`` whatever ``dtype`` says: with
    ``dtype='bfloat16'`` on a GPU every step multiplies the loss by 2**16, unscales the gradients, reads their
    found-inf (a device synchronisation per optimiser step) and skips the step when one overflows, although bf16
    has float32's exponent range and needs no scaling. For a host user (process-wide once ``ranksrgan_plugin.mmagic``
    is imported), an ``AmpOptimWrapper`` or ``AnyDeviceAmpOptimWrapper`` with ``dtype`` bfloat16, float32 or
    float64 has a disabled scaler (``loss_scaler.is_enabled()`` is False: backward and step as ``OptimWrapper``'s,
    nothing skipped, an empty ``loss_scaler`` entry in its state; a checkpoint's scaler state is ignored on
    resume); a ``loss_scale`` other than ``'dynamic'`` with such a dtype is refused by name (it would be
    ignored). float16, and no dtype (float16 on a GPU; bf16 on the CPU, where torch disables the CUDA scaler
    itself), are upstream's.
    """
    from mmengine.optim import AmpOptimWrapper

    if 'amp_init' in _UPSTREAM:
        return
    upstream = _UPSTREAM['amp_init'] = AmpOptimWrapper.__init__

    @functools.wraps(upstream)
    def __init__(self: Any, loss_scale: Any = 'dynamic', dtype: Any = None, use_fsdp: bool = False,
                 **kwargs: Any) -> None:
        upstream(self, loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
        if self.cast_dtype not in SCALERLESS_DTYPES:
            return
        if loss_scale != 'dynamic':
            raise ValueError(f'optim_wrapper ({type(self).__name__}): loss_scale={loss_scale!r} with '
                             f'dtype={str(self.cast_dtype).replace("torch.", "")!r}: only float16 runs scale their '
                             "losses. Remove loss_scale, or set dtype='float16'.")
        self.loss_scaler = torch.amp.GradScaler('cuda', enabled=False)

    AmpOptimWrapper.__init__ = __init__
