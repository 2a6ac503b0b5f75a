"""Workarounds for BasicSR 1.4.2 defects (the BasicSR side of :mod:`ranksrgan_plugin.compat`).

Each function names the defect it works around and what changes for a user of the host library.
:func:`alias_torchvision_functional_tensor` runs when ``ranksrgan_plugin`` is imported (before the
first ``import basicsr``), :func:`note_numpy_errstate_of_basicsr_import` around the plugin's
``import basicsr`` (:func:`undo_basicsr_seterr` is applied by the MMagic side); :func:`patch_basicsr_train`
when the plugin's train / test entry points start; the others where the plugin builds the affected
object. Each is a no-op where upstream works. Every workaround is listed, with the upstream defect, the
version and the test that pins it, in ``docs/workarounds.md``; nothing else lives here (the options copies:
:mod:`ranksrgan_plugin.utils.options`, training states: :mod:`ranksrgan_plugin.utils.training_state`, frozen
networks on resume: :mod:`ranksrgan_plugin.models.frozen_networks`, the VGG weights: :mod:`ranksrgan_plugin.losses.
vgg_weights`). This module imports nothing of BasicSR at module level (it must be importable before the alias).
"""
import contextlib
import importlib
import os
import os.path as osp
import sys
import types
from typing import Any, Dict, Iterator, Mapping, Optional

import numpy as np
import torch


def alias_torchvision_functional_tensor() -> None:
    """basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (basicsr/data/degradations.py).

    torchvision 0.17 renamed it ``_functional_tensor``; without the alias ``import basicsr`` fails.
    Fixed on BasicSR master after 1.4.2, never released. For a host user: where the old name does not
    import, ``sys.modules['torchvision.transforms.functional_tensor']`` is torchvision's
    ``_functional_tensor`` (so ``import basicsr`` works); where it imports, nothing changes.
    """
    old_name = 'torchvision.transforms.functional_tensor'
    if old_name in sys.modules:
        return
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


_NUMPY_ERRSTATE: Dict[str, Dict[str, str]] = {}


@contextlib.contextmanager
def note_numpy_errstate_of_basicsr_import() -> Iterator[None]:
    """Record numpy's error state around the plugin's first ``import basicsr`` (for :func:`undo_basicsr_seterr`).

    basicsr 1.4.2's ``basicsr/data/degradations.py`` calls ``np.seterr(divide='ignore', invalid='ignore')``
    at import, for the whole process. ``ranksrgan_plugin/__init__.py`` imports BasicSR inside this
    context; when BasicSR was not imported before, the states before and after are kept. Changes nothing.
    """
    fresh = 'basicsr' not in sys.modules
    before = np.geterr()
    yield
    if fresh:
        _NUMPY_ERRSTATE.update(before=before, after=np.geterr())


def undo_basicsr_seterr() -> bool:
    """Give numpy back the error state it had before the plugin imported BasicSR; True when it did.

    Used by the MMagic side (``ranksrgan_plugin.mmagic``), whose import imports BasicSR through the
    shared classes: without this, basicsr 1.4.2's import-time ``np.seterr(divide='ignore', invalid='ignore')``
    silences numpy's divide and invalid warnings in an MMagic process that never asked for BasicSR.
    For a host user: numpy's error state is the one before the plugin's import. Nothing is done when
    BasicSR was imported before the plugin (then it is the host's own state), or when the state was
    changed since BasicSR set it. A later ``import basicsr`` in the same process finds BasicSR
    imported and so no longer sets the state itself. One-shot.
    """
    before, after = _NUMPY_ERRSTATE.pop('before', None), _NUMPY_ERRSTATE.pop('after', None)
    if before is None or np.geterr() != after or before == after:
        return False
    np.seterr(**before)
    return True


def load_resume_state_any_device(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Replacement for ``basicsr.train.load_resume_state`` (basicsr 1.4.2).

    The decision is upstream's: with ``auto_resume`` the newest ``<iter>.state`` of the training-states
    folder is resumed and written to ``path.resume_state``, and when there is none training starts
    fresh (``path.resume_state`` is then ignored, as upstream does); without ``auto_resume``,
    ``path.resume_state`` is resumed if set. ``check_resume`` then rewrites the ``pretrain_network_*``
    paths. What changes for a host user:

    - the state is loaded onto the current CUDA device, or the CPU without CUDA (upstream calls
      ``torch.cuda.current_device()`` unconditionally and crashes on a CPU-only machine);
    - the folder searched is the experiment's ``path.training_states`` (upstream:
      ``experiments/<name>/training_states`` relative to the working directory; the same folder when
      training runs from the root BasicSR's options put experiments under);
    - the file is read with the safe loader (:func:`~ranksrgan_plugin.utils.training_state.read_training_state`):
      a state holding anything
      but what BasicSR saves is refused with an error naming the file and the type (upstream's
      ``torch.load`` is the safe loader too on torch >= 2.6, with a generic error);
    - a missing, empty, truncated or non-torch file, or a file that is not a training state (a weights
      file), is refused naming it and ``path.resume_state`` or ``--auto_resume``'s pick (upstream: torch's
      errors, or ``KeyError: 'iter'``);
    - a model class's ``frozen_networks`` keep their pretrained paths
      (:func:`~ranksrgan_plugin.models.frozen_networks.keep_frozen_network_paths`).
    """
    from basicsr.utils import check_resume, scandir

    from ..models.frozen_networks import keep_frozen_network_paths

    resume_state_path = None
    if opt.get('auto_resume'):
        state_dir = opt['path']['training_states']
        if osp.isdir(state_dir):
            states = [float(name.split('.state')[0]) for name in scandir(state_dir, suffix='state', recursive=False)]
            if states:
                resume_state_path = osp.join(state_dir, f'{max(states):.0f}.state')
                opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']
    if resume_state_path is None:
        return None
    keep_frozen_network_paths(opt)
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
    resume_state = read_resume_state(opt, resume_state_path, device)
    check_resume(opt, resume_state['iter'])
    return resume_state


def read_resume_state(opt: Dict[str, Any], path: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """The training state ``path`` that ``opt`` resumes, refused by name when it is not one (part of
    :func:`load_resume_state_any_device`: basicsr 1.4.2 reads any file and fails in torch or on
    ``KeyError: 'iter'``)."""
    from ..checkpoints import UnreadableCheckpointError
    from ..utils.training_state import read_training_state
    from ..utils.training_state_fit import check_is_training_state, resume_source

    source = resume_source(opt, path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{source} ' + ('is a folder, not a <iter>.state file.' if osp.isdir(path) else
                                                'does not exist.'))
    try:
        state = read_training_state(path, map_location=map_location)
    except UnreadableCheckpointError as error:
        advice = ' (delete it to resume from the state before it)' if opt.get('auto_resume') else ''
        raise UnreadableCheckpointError(source, error.problem + advice) from None
    check_is_training_state(state, source)
    return state


def load_resume_state_checked(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``basicsr.train.load_resume_state`` (basicsr 1.4.2) of the plugin's entry points:
    :func:`load_resume_state_any_device`, then the state checked against the options before anything is built
    or written.

    Upstream builds the model (loading this experiment's ``net_<x>_<iter>.pth``, as ``check_resume`` set)
    and then asserts ``Wrong lengths of optimizers`` when the state is another model's, or fails on a
    missing file (the options copy, a weights file) when it is another experiment's. For a host user of
    those entry points: the same decision; a state recorded as (or, without the record, whose optimizer
    count says it is) another model type's, or whose ``net_<x>_<iter>.pth`` files are not in this
    experiment, raises :class:`~ranksrgan_plugin.utils.training_state_fit.ResumeStateMismatchError`
    naming the file, the option that named it and what wrote it.
    """
    from ..utils.training_state_fit import check_resumed_networks_exist, check_state_fits_options, resume_source

    state = load_resume_state_any_device(opt)
    if state is not None:
        source = resume_source(opt)
        check_state_fits_options(state, opt, source)
        check_resumed_networks_exist(opt, source, state['iter'])
    return state


def resume_training_checked(self: Any, resume_state: Mapping[str, Any]) -> None:
    """Replacement for ``BaseModel.resume_training`` (basicsr 1.4.2) that checks the state fits first.

    Upstream asserts ``Wrong lengths of optimizers`` / ``schedulers`` (naming no file), and a state of
    another network (same count of tensors, other shapes) loads and fails inside the first optimiser
    step with torch's size error. For a host user: the same resume; a state whose optimizers or
    schedulers do not fit the model's, tensor by tensor, raises ``ResumeStateMismatchError`` naming the
    file, ``path.resume_state`` or ``--auto_resume``'s pick, the network and what wrote the file.
    """
    from ..utils.training_state_fit import check_state_fits_model, resume_source

    check_state_fits_model(self, resume_state, resume_source(self.opt))
    _UPSTREAM['resume_training'](self, resume_state)


def save_training_state_recorded(self: Any, epoch: int, current_iter: int) -> None:
    """Replacement for ``BaseModel.save_training_state`` (basicsr 1.4.2): the same file and retries, with
    the record of :func:`~ranksrgan_plugin.utils.training_state.training_state`. For a host user: the state has
    one more entry, ``written_by``."""
    from ..utils.training_state import training_state, write_training_state

    if current_iter != -1:
        write_training_state(self.opt, training_state(self, epoch, current_iter))


def save_network_atomically(self: Any, net: Any, net_label: str, current_iter: Any, param_key: Any = 'params') -> None:
    """Replacement for ``BaseModel.save_network`` (basicsr 1.4.2): upstream ``torch.save``s into
    ``path.models/<net_label>_<iter>.pth`` in place, so a job killed mid-write leaves a truncated file under
    the name an evaluation, a stage output (``net_r_latest.pth``) or a resume reads. Upstream writes the same
    file into ``path.models/.partial/``, which is then renamed into place. For a host user: that folder exists."""
    from ..utils.atomic_files import publish

    models = self.opt['path']['models']
    staging = osp.join(models, '.partial')
    os.makedirs(staging, exist_ok=True)
    self.opt['path']['models'] = staging
    try:
        _UPSTREAM['save_network'](self, net, net_label, current_iter, param_key)
    finally:
        self.opt['path']['models'] = models
    name = f"{net_label}_{'latest' if current_iter == -1 else current_iter}.pth"
    if osp.isfile(osp.join(staging, name)):  # not on the ranks other than 0 (upstream is master_only)
        publish(osp.join(staging, name), osp.join(models, name))


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
    which fails on CPU; a CPU process group (gloo) needs ``device_ids=None``. For a host user: a
    distributed run on the CPU wraps with ``device_ids=None``; with CUDA, or without a process group,
    it is upstream's method unchanged.
    """
    from torch.nn.parallel import DistributedDataParallel

    if self.opt['dist'] and self.device.type == 'cpu':
        return DistributedDataParallel(net.to(self.device), find_unused_parameters=self.opt.get(
            'find_unused_parameters', False))
    return _UPSTREAM['model_to_device'](self, net)


FLATTEN_MARK = '_flattens_channels_last'  # set on a discriminator whose features are made contiguous before .view


def flatten_channels_last_features(net: torch.nn.Module) -> torch.nn.Module:
    """Let basicsr 1.4.2's ``VGGStyleDiscriminator`` run in channels-last memory format (``train.channels_last``).

    Upstream's ``forward`` flattens its last feature map with ``feat.view(feat.size(0), -1)``, which raises
    ``RuntimeError: view size is not compatible with input tensor's size and stride`` on channels-last
    features larger than 1x1. For a host user: every ``VGGStyleDiscriminator`` in ``net`` (and subclasses) gets a
    forward hook on its last BatchNorm (``bn4_1``, ``bn5_1`` at ``input_size`` 256) that returns that output in
    contiguous (NCHW) order: the same values, flattened as upstream does in channels-first format. Applied by
    the plugin's models when ``train.channels_last`` is set; other networks are left as they are. Returns ``net``.
    """
    from basicsr.archs.discriminator_arch import VGGStyleDiscriminator

    for module in net.modules():
        if isinstance(module, VGGStyleDiscriminator) and not getattr(module, FLATTEN_MARK, False):
            last = module.bn5_1 if module.input_size == 256 and hasattr(module, 'bn5_1') else module.bn4_1
            last.register_forward_hook(_contiguous_output)
            setattr(module, FLATTEN_MARK, True)
    return net


def _contiguous_output(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous()


class TrainingSetTooSmallError(ValueError):
    """A training set that yields no batch per process: BasicSR would train zero iterations."""


def create_train_val_dataloader_checked(opt: Dict[str, Any], logger: Any) -> tuple:
    """``basicsr.train.create_train_val_dataloader`` (basicsr 1.4.2) that refuses a training set smaller than a batch.

    Upstream's loader drops the last partial batch, so a training set holding fewer images (times
    ``dataset_enlarge_ratio``, per process) than ``batch_size_per_gpu`` yields no batch: the run
    "finishes" at once, validates and saves an untrained network, exit status 0, no warning. For a host
    user: such a run raises :class:`TrainingSetTooSmallError` naming the dataset, its image count and
    the batch size before anything is trained; every other run is upstream's.
    """
    result = _UPSTREAM['create_train_val_dataloader'](opt, logger)
    train_loader = result[0]
    if train_loader is not None and len(train_loader) == 0:
        dataset_opt = opt['datasets']['train']
        roots = [f'{key} {dataset_opt[key]}' for key in ('dataroot', 'dataroot_gt', 'dataroot_lq')
                 if key in dataset_opt]
        raise TrainingSetTooSmallError(
            f"Training set {dataset_opt.get('name')!r} ({', '.join(roots)}) holds {len(train_loader.dataset)} "
            f"items x dataset_enlarge_ratio {dataset_opt.get('dataset_enlarge_ratio', 1)} over {opt['world_size']} "
            f"process(es): fewer than one batch (datasets.train.batch_size_per_gpu "
            f"{dataset_opt['batch_size_per_gpu']}) per process, so BasicSR would train 0 iterations. Add data, raise "
            'dataset_enlarge_ratio or lower batch_size_per_gpu.')
    return result


def resume_aware_message_logger() -> type:
    """BasicSR's ``MessageLogger`` (basicsr 1.4.2) whose ETA is never negative and counts only this run's iterations.

    Upstream averages the time over ``current_iter - start_iter + 1`` iterations and multiplies by
    ``total_iter - current_iter - 1``: at the last iteration, and so on the first log line after an
    ``--auto_resume`` near the end, the ETA reads ``-1 day, 23:59:..``. For a host user: the same log
    line with the average over the ``current_iter - start_iter`` iterations this process ran and an
    ETA of ``max(0, total_iter - current_iter)`` of them.
    """
    from basicsr.utils import MessageLogger

    class ResumeAwareMessageLogger(MessageLogger):
        def __call__(self, log_vars: Dict[str, Any]) -> None:
            start_iter, max_iters = self.start_iter, self.max_iters
            self.start_iter += 1  # upstream divides by (current - start + 1)
            self.max_iters = max(max_iters, log_vars['iter']) + 1  # and multiplies by (max - current - 1)
            try:
                super().__call__(log_vars)
            finally:
                self.start_iter, self.max_iters = start_iter, max_iters

    return ResumeAwareMessageLogger


class UnreadableImageError(ValueError):
    """A training image that cannot be decoded (the message names the file and the dataset)."""


def name_unreadable_training_images() -> None:
    """Name the file when BasicSR's ``PairedImageDataset`` meets an image it cannot decode (basicsr 1.4.2).

    Upstream's ``imfrombytes`` calls ``.astype`` on ``cv2.imdecode``'s ``None``: ``AttributeError:
    'NoneType' object has no attribute 'astype'``, naming no file, possibly hours into a run. For a
    host user: the same dataset; such an item raises :class:`UnreadableImageError` naming the
    dataset and the file(s) of the item that do not decode.
    """
    from basicsr.data.paired_image_dataset import PairedImageDataset

    if 'paired_getitem' in _UPSTREAM:
        return
    upstream = _UPSTREAM['paired_getitem'] = PairedImageDataset.__getitem__

    def __getitem__(self: Any, index: int) -> Dict[str, Any]:
        try:
            return upstream(self, index)
        except AttributeError as error:
            paths = [path for path in self.paths[index].values() if isinstance(path, str) and osp.isfile(path)]
            bad = [path for path in paths if _undecodable(path)]
            if not bad:
                raise
            raise UnreadableImageError(f"Dataset {self.opt.get('name')!r}: cannot decode {', '.join(bad)} (a "
                                       'corrupt, truncated or non-image file).') from error

    PairedImageDataset.__getitem__ = __getitem__


def _undecodable(path: str) -> bool:
    import cv2

    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is None


def close_distributed() -> None:
    """Tear down the process group that basicsr 1.4.2's train / test pipelines leave up.

    A gloo worker (``torchrun ... --launcher pytorch`` on the CPU) that exits with the group alive can abort
    in its thread teardown ("terminate called without an active exception", exit status -6, after the
    last iteration: seen on the 2-core box). For a host user of the plugin's entry points: all ranks meet
    at a barrier and the group is destroyed when the pipeline returns; nothing happens without a group.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


GENERATOR_FACTOR_KEYS = ('upscale', 'scale', 'upscale_factor')  # MSRResNet / RankSRGANGenerator / SwinIR, RRDBNet
# the -opt file of the options dict the running pipeline parsed (for messages); kept with that dict, so a
# model built later from other options (another pipeline in the same process, a test) is not told a stale file
_OPTIONS_FILE: Dict[str, Any] = {}


def options_file_of(opt: Mapping[str, Any]) -> str:
    """The ``-opt`` file the patched pipeline parsed ``opt`` from, else ``''`` (for the messages of
    :func:`check_generator_scale`: basicsr 1.4.2's options do not keep their file's name)."""
    return _OPTIONS_FILE['path'] if _OPTIONS_FILE.get('opt') is opt else ''


def declared_scales(opt: Mapping[str, Any]) -> list:
    """``[(scale, option)]``: the options' top-level ``scale`` (basicsr 1.4.2 copies it into every dataset), or
    without one each ``datasets.<phase>.scale`` given (what :func:`check_generator_scale` compares)."""
    if 'scale' in opt:
        return [(opt['scale'], "scale (the options' top-level scale)")]
    return [(dataset['scale'], f'datasets.{phase}.scale') for phase, dataset in (opt.get('datasets') or {}).items()
            if isinstance(dataset, Mapping) and 'scale' in dataset]


def measure_generator_scale(net: torch.nn.Module, name: str, num_in_ch: int = 3) -> int:
    """:func:`~ranksrgan_plugin.utils.upscaler.infer_scale` of a model's generator as it is being trained (for
    :func:`check_generator_scale`, the basicsr 1.4.2 workaround):
    measured in eval mode (a BatchNorm keeps its statistics) and through the uncompiled forward
    (``train.compile`` replaces the instance's ``forward``; a probe would compile it for a 16x16 input)."""
    from ..utils.upscaler import infer_scale

    was_training, compiled = net.training, net.__dict__.pop('forward', None)
    try:
        return infer_scale(net.eval(), num_in_ch, name)
    finally:
        net.train(was_training)
        if compiled is not None:
            net.forward = compiled


def check_generator_scale(model: Any) -> None:
    """Refuse a model whose ``net_g`` does not upscale by the options' ``scale`` (:func:`declared_scales`).

    Upstream (basicsr 1.4.2) trains and validates anyway: the paired dataset's crop fails naming only sizes (``Scale
    mismatches. GT (32, 32) is not 2x multiplication of LQ (8, 8)``), or the loss / ``calculate_psnr``
    fails on tensors of other shapes, after data was read. For a host user of the plugin's entry points
    (and of the plugin's models): a :class:`~ranksrgan_plugin.utils.upscaler.ScaleError` naming the options
    file, the option and the network when the model is built. A model without ``net_g`` (a Ranker) or
    without a declared scale is not checked; a network that cannot be probed on a 16x16 image (a video
    model's) is skipped with a warning, unless it is the plugin's RankSRGANModel.
    """
    from ..utils.upscaler import ScaleError

    net, opt = getattr(model, 'net_g', None), model.opt
    declared = declared_scales(opt)
    if net is None or not declared or getattr(model, 'generator_scale', None) is not None:
        return
    network_opt = opt.get('network_g') or {}
    name = f"network_g ({network_opt.get('type', type(net).__name__)})"
    where = f"{_OPTIONS_FILE['building']}: " if _OPTIONS_FILE.get('building') else ''
    for value, option in declared:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ScaleError(f'{where}{option} must be a positive integer, got {value!r}.')
    num_in_ch = network_opt.get('num_in_ch', network_opt.get('in_chans', 3))
    try:
        measured = measure_generator_scale(model.get_bare_model(net), name, num_in_ch)
    except ScaleError as error:
        if type(model).__name__ == 'RankSRGANModel':
            raise ScaleError(f'{where}{error}') from None
        from basicsr.utils import get_root_logger

        get_root_logger().warning(f'The options\' scale is not checked against the network: {error}')
        return
    for value, option in declared:
        if value != measured:
            raise ScaleError(f'{where}{option.replace("scale", f"scale {value}", 1)} does not match {name}: it '
                             f'upscales x{measured}, so the x{value} data would be cropped, trained and validated '
                             f'against x{measured} outputs. Set scale: {measured} (with x{measured} data), or give '
                             f'{_factor_option(network_opt, value)}.')
    model.generator_scale = measured


def _factor_option(network_opt: Mapping[str, Any], value: int) -> str:
    key = next((key for key in GENERATOR_FACTOR_KEYS if key in network_opt), None)
    return f'network_g.{key}: {value}' if key else f'a network_g of factor {value}'


def build_model_checked(opt: Dict[str, Any]) -> Any:
    """``basicsr.models.build_model`` (basicsr 1.4.2), then :func:`check_generator_scale`."""
    # upstream deep-copies opt: the file is noted for the checks run while this build lasts (the model's own too)
    _OPTIONS_FILE['building'] = options_file_of(opt)
    try:
        model = _UPSTREAM['build_model'](opt)
        check_generator_scale(model)
    finally:
        _OPTIONS_FILE['building'] = ''
    return model


def parse_options_noted(root_path: str, is_train: bool = True) -> tuple:
    """``basicsr.utils.options.parse_options`` that notes the ``-opt`` file for the messages of the checks."""
    opt, args = _UPSTREAM['parse_options'](root_path, is_train=is_train)
    _OPTIONS_FILE.update(opt=opt, path=args.opt)
    return opt, args


_UPSTREAM: Dict[str, Any] = {}


def patch_basicsr_train() -> None:
    """Install the fixes that concern BasicSR's training pipeline (see the functions above).

    Called by the plugin's train / test entry points (``ranksrgan_plugin.train``), not at import. For a
    host user of those entry points, process-wide: ``basicsr.train.load_resume_state`` is
    :func:`load_resume_state_checked`, ``basicsr.utils.options.init_dist`` is
    :func:`init_dist_any_device`, ``BaseModel.model_to_device`` is :func:`model_to_device_any_device`,
    ``basicsr.train.create_train_val_dataloader`` is :func:`create_train_val_dataloader_checked`,
    ``basicsr.train.MessageLogger`` is :func:`resume_aware_message_logger`'s class,
    ``PairedImageDataset.__getitem__`` names undecodable files (:func:`name_unreadable_training_images`),
    ``BaseModel``'s ``resume_training`` / ``save_training_state`` / ``save_network`` are
    :func:`resume_training_checked` / :func:`save_training_state_recorded` / :func:`save_network_atomically`,
    and the pipelines' (``basicsr.train`` / ``basicsr.test``) ``build_model`` is :func:`build_model_checked`
    (the options' scale checked against ``net_g``).
    """
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.dist_util import master_only

    basicsr.train.load_resume_state = load_resume_state_checked
    basicsr.utils.options.init_dist = init_dist_any_device
    name_unreadable_training_images()
    if 'create_train_val_dataloader' not in _UPSTREAM:
        _UPSTREAM['create_train_val_dataloader'] = basicsr.train.create_train_val_dataloader
        basicsr.train.create_train_val_dataloader = create_train_val_dataloader_checked
        basicsr.train.MessageLogger = resume_aware_message_logger()
    if 'model_to_device' not in _UPSTREAM:
        _UPSTREAM['model_to_device'] = BaseModel.model_to_device
        BaseModel.model_to_device = model_to_device_any_device
    if 'build_model' not in _UPSTREAM:
        import basicsr.test

        _UPSTREAM['build_model'], _UPSTREAM['parse_options'] = basicsr.train.build_model, basicsr.train.parse_options
        for pipeline in (basicsr.train, basicsr.test):
            pipeline.build_model, pipeline.parse_options = build_model_checked, parse_options_noted
    if 'resume_training' not in _UPSTREAM:
        _UPSTREAM['resume_training'] = BaseModel.resume_training
        BaseModel.resume_training = resume_training_checked
        BaseModel.save_training_state = master_only(save_training_state_recorded)  # as upstream's: rank 0 writes
    if 'save_network' not in _UPSTREAM:
        _UPSTREAM['save_network'] = BaseModel.save_network
        BaseModel.save_network = save_network_atomically


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
    from ..losses.vgg_weights import find_imagenet_vgg_weights

    if perceptual_opt and perceptual_opt.get('type') == 'PerceptualLoss':
        find_imagenet_vgg_weights(perceptual_opt.get('vgg_type', 'vgg19'))

