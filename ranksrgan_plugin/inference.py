"""Upscale a folder of images with a trained generator (plugin checkpoint or official RankSRGAN weights).

The network is either given by BasicSR options (``{'type': 'RankSRGANGenerator', ...}``, e.g. an
options YAML's ``network_g``) with a BasicSR checkpoint (``{'params_ema' | 'params': state_dict}``),
or read off an official RankSRGAN / SRResNet checkpoint by
:func:`ranksrgan_plugin.checkpoints.convert_official_checkpoint` (which also accepts a
plugin checkpoint of a ``RankSRGANGenerator``, and ESRGAN's RRDBNet checkpoints). Tiled, batched
inference is :class:`ranksrgan_plugin.utils.upscaler.TiledUpscaler`'s (as the rank dataset's network
levels): the tiles' context defaults to the network's receptive-field radius, so a tiled output
equals the untiled one (up to the float kernels' last-bit rounding).
"""
import os
import os.path as osp
import warnings
from copy import deepcopy
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import cv2
import numpy as np
import torch
import yaml
from basicsr.archs import build_network
from tqdm import tqdm

from .checkpoints import (
    CheckpointKeyError,
    CheckpointMismatchError,
    UnknownCheckpointLayout,
    arch_state_dict,
    convert_official_checkpoint,
    read_checkpoint,
    unwrap_state_dict,
)
from .data.rank_dataset_format import IMAGE_EXTENSIONS
from .rank_dataset.levels import LevelError, read_image
from .utils.image_files import describe_shared_stems, files_by_stem
from .utils.tiling import TilingError
from .utils.upscaler import HoldsUpscaler, ScaleError, build_upscaler, check_scale


class InferenceError(ValueError):
    """A missing or unusable checkpoint, network or input folder (the message names it)."""


def parse_arch_options(items: Optional[List[str]]) -> Dict[str, Any]:
    """``['num_feat=64', 'upscale=4']`` -> ``{'num_feat': 64, 'upscale': 4}`` (values parsed as YAML)."""
    options: Dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise InferenceError(f'Architecture option {item!r} is not KEY=VALUE.')
        options[key.strip()] = yaml.safe_load(value)
    return options


def network_options_from_yaml(path: str, key: str = 'network_g') -> Dict[str, Any]:
    """The ``network_g`` (or ``key``) options of a BasicSR options YAML."""
    if not osp.isfile(path):
        raise InferenceError(f'Options file {path} does not exist.')
    with open(path) as f:
        opt = yaml.safe_load(f) or {}
    if not isinstance(opt.get(key), Mapping) or 'type' not in opt[key]:
        raise InferenceError(f'{path} has no `{key}` section with a `type`.')
    return dict(opt[key])


def load_generator(checkpoint: str, network_opt: Optional[Mapping[str, Any]] = None,
                   param_key: Optional[str] = None) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """(network with the weights loaded strictly, its options).

    Args:
        checkpoint: a BasicSR checkpoint or an official RankSRGAN / SRResNet / ESRGAN checkpoint.
        network_opt: BasicSR network options (``type`` + arguments); ``None`` converts an official
            checkpoint, reading the architecture off the weights.
        param_key: which checkpoint entry holds the weights (default: ``params_ema``, else ``params``).
    """
    if not osp.isfile(checkpoint):
        raise InferenceError(f'Checkpoint {checkpoint} does not exist.')
    ckpt = read_checkpoint(checkpoint)
    if not isinstance(ckpt, Mapping):
        raise InferenceError(f'Checkpoint {checkpoint} is not a state_dict (it is a {type(ckpt).__name__}).')
    try:
        state_dict = unwrap_state_dict(ckpt, param_key, f'Checkpoint {checkpoint}')
    except CheckpointKeyError as err:
        raise InferenceError(str(err)) from err
    return _build_generator(checkpoint, state_dict, network_opt)


def _build_generator(checkpoint: str, state_dict: Mapping[str, Any],
                     network_opt: Optional[Mapping[str, Any]]) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """The network of a loaded state_dict: converted (no ``network_opt``) or built and loaded strictly."""
    if network_opt is None:
        try:
            layout, options, net = convert_official_checkpoint(state_dict)
        except UnknownCheckpointLayout as err:
            raise InferenceError(f'{checkpoint}: {err} Give the network with --arch / --opt.') from err
        if layout.startswith('ranker'):
            raise InferenceError(f'{checkpoint} is a Ranker, not a generator.')
        return net.eval(), options
    options = dict(network_opt)
    if 'type' not in options:
        raise InferenceError(f'Network options {options} have no `type`.')
    net = build_network(deepcopy(options))
    try:
        arch_weights, layout, read = arch_state_dict(state_dict, None, checkpoint)
        net.load_state_dict(arch_weights, strict=True)
    except CheckpointMismatchError as err:
        raise InferenceError(str(err)) from err
    except RuntimeError as err:
        origin = f' (an official {layout} checkpoint: {read})' if layout else ''
        raise InferenceError(f'{checkpoint}{origin} does not fit the network {options}: {err}') from err
    return net.eval(), options


class GeneratorUpscaler(HoldsUpscaler):
    """A loaded generator run on BGR uint8 images by a :class:`~ranksrgan_plugin.utils.upscaler.TiledUpscaler`
    (``tile=0``: whole image; tiles batched ``batch_size`` at a time).

    ``tile_pad='auto'`` (default) is the network's receptive-field radius, so tiles reproduce the
    untiled output (up to the float kernels' last-bit rounding); a smaller explicit pad is allowed
    here (it saves memory and time at the cost of tile seams) with a warning.
    """

    def __init__(self, net: torch.nn.Module, network_opt: Mapping[str, Any], scale: Optional[int] = None,
                 tile: int = 0, tile_pad: Union[int, str] = 'auto', batch_size: int = 4,
                 device: Optional[str] = None, weights: str = '') -> None:
        self.name = str(network_opt.get('type', 'generator'))
        self.network_opt, self.weights = dict(network_opt), weights
        num_in_ch = int(network_opt.get('num_in_ch', 3))
        what = f'{self.name} ({weights})' if weights else self.name
        try:
            measured = check_scale(net.eval(), scale, what, '--scale', num_in_ch)
            self.upscaler = build_upscaler(net, measured, tile, tile_pad, batch_size, device, what,
                                           self._pad_below_receptive_field, num_in_ch)
        except (TilingError, ScaleError) as err:
            raise InferenceError(str(err)) from err

    @property
    def scale(self) -> int:
        """The upscaling factor, measured from the network (a given ``scale`` must equal it)."""
        return self.upscaler.scale

    def _pad_below_receptive_field(self, tile_pad: int, radius: int) -> None:
        """Inference only: a smaller pad is a speed/memory trade-off, warned about, not refused."""
        warnings.warn(f'tile pad {tile_pad} is below the {self.name} receptive-field radius '
                      f'({radius} LR pixels): tile seams may show; use auto (= '
                      f'{radius}) for output equal to the untiled one.', stacklevel=5)

    def __call__(self, lr: np.ndarray, hr: Optional[np.ndarray] = None, stem: str = '') -> np.ndarray:
        """The SR image (BGR uint8) of a BGR uint8 image (``hr`` and ``stem`` are ignored)."""
        return self.upscaler(lr)


def list_input_images(folder: str) -> List[str]:
    """Sorted image paths of ``folder``, one per stem (outputs are named by stem).

    Raises:
        InferenceError: a missing or image-less folder, or images sharing a stem (``x.png`` and
            ``x.jpg`` would both write ``x.png``), all such files named.
    """
    if not osp.isdir(folder):
        raise InferenceError(f'Input folder {folder} does not exist.')
    stems = files_by_stem(folder)
    if not stems:
        raise InferenceError(f'Input folder {folder} holds no image (extensions {", ".join(IMAGE_EXTENSIONS)}).')
    shared = describe_shared_stems(stems)
    if shared:
        raise InferenceError(f'Input folder {folder}: {shared}. Their outputs would overwrite each other '
                             '(<stem>.png): keep one image per stem.')
    return sorted(osp.join(folder, names[0]) for names in stems.values())


def upscale_folder(input_folder: str, output_folder: str, upscaler: GeneratorUpscaler, suffix: str = '',
                   progress: bool = True) -> List[str]:
    """Upscale every image of ``input_folder`` into ``<output_folder>/<stem><suffix>.png``; the written paths.

    Raises:
        InferenceError: see :func:`list_input_images`; the output folder is the input folder; an
            unreadable image (named).
    """
    files = list_input_images(input_folder)
    if osp.isdir(output_folder) and osp.samefile(input_folder, output_folder):
        raise InferenceError(f'Output folder {output_folder} is the input folder: the SR images would overwrite '
                             'or join the LR ones (a rerun would upscale them). Give another --output folder.')
    os.makedirs(output_folder, exist_ok=True)
    written = []
    for path in tqdm(files, desc='inference', unit='img', disable=not progress):
        try:
            img = read_image(path)
        except LevelError as err:
            raise InferenceError(str(err)) from err
        out_path = osp.join(output_folder, osp.splitext(osp.basename(path))[0] + suffix + '.png')
        if not cv2.imwrite(out_path, upscaler(img)):
            raise InferenceError(f'Cannot write {out_path}.')
        written.append(out_path)
    return written
