"""Sources of the *levels* of a rank dataset: SR images of rising perceptual quality.

A level turns one source image (its HR ground truth and its LR input) into an SR image of the
HR's size. Kinds: ``network`` (any BasicSR arch with a weights file, e.g. the paper's SRResNet /
SRGAN / ESRGAN, whose official checkpoints are converted on load), ``folder`` (precomputed SR
images matched by name), ``hr`` (the ground truth itself: the paper's RankSRGAN-HR) and
``builtin`` (classical upscalers, so the tool runs with no weights at all), each registered in
:data:`LEVEL_REGISTRY` under that type name. Images are BGR uint8 HWC, as cv2 and BasicSR read them.
"""
import os
import os.path as osp
from copy import deepcopy
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from basicsr.archs import build_network

from ..checkpoints import CheckpointMismatchError, load_network_weights
from ..data.rank_dataset_format import IMAGE_EXTENSIONS
from ..iqa import matlab_resize_uint8
from ..utils.registry import TypeNameRegistry
from ..utils.tiling import TilingError
from ..utils.upscaler import HoldsUpscaler, ScaleError, build_upscaler, infer_scale

LEVEL_REGISTRY = TypeNameRegistry('rank_level')


class LevelError(ValueError):
    """A level is misconfigured or produced an unusable image."""


def matlab_bicubic(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of a uint8 image, rounded to uint8 (see
    :func:`~ranksrgan_plugin.iqa.image_prep.matlab_resize_uint8`): the levels' and the LR images' resize."""
    return matlab_resize_uint8(img, scale)


def unsharp_mask(img: np.ndarray, sigma: float = 2.0, amount: float = 1.5) -> np.ndarray:
    """Classical unsharp masking: ``img + amount * (img - gaussian_blur(img))``."""
    img_f = img.astype(np.float32)
    blurred = cv2.GaussianBlur(img_f, (0, 0), sigma)
    return np.clip(np.round(img_f + amount * (img_f - blurred)), 0, 255).astype(np.uint8)


def _cv2_upscale(interpolation: int) -> Callable[[np.ndarray, int], np.ndarray]:
    def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
        return cv2.resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale), interpolation=interpolation)

    return upscale


_last_upscale: Tuple[Any, ...] = (None, None, None)  # (lr, scale, its bicubic upscaling)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """:func:`matlab_bicubic` by ``scale``; the ``bicubic`` and ``sharpened`` levels of one image share it (the
    last result is kept for the same LR array object, read-only)."""
    global _last_upscale
    last_lr, last_scale, last_sr = _last_upscale
    if last_lr is lr and last_scale == scale:
        return last_sr
    sr = matlab_bicubic(lr, scale)
    sr.flags.writeable = False
    _last_upscale = (lr, scale, sr)  # one tuple: a reader in another thread sees all three or none
    return sr


BUILTIN_UPSCALERS: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    'nearest': _cv2_upscale(cv2.INTER_NEAREST),
    'bilinear': _cv2_upscale(cv2.INTER_LINEAR),
    'bicubic': bicubic_upscale,
    'lanczos': _cv2_upscale(cv2.INTER_LANCZOS4),
    'sharpened': lambda lr, scale: unsharp_mask(bicubic_upscale(lr, scale)),
}


class SRLevel:
    """One level of a rank dataset: ``level(lr, hr, stem)`` returns an SR image of ``hr``'s size."""

    # the option keys from_options reads besides name and type (the build refuses others); None: not checked
    option_keys: Optional[Tuple[str, ...]] = None

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        sr = self.upscale(lr, hr, stem)
        if sr.shape != hr.shape:
            raise LevelError(f'Level {self.name!r} gave a {sr.shape} image for {stem!r}, the HR image is {hr.shape}.')
        return sr

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        """The SR image of the source image ``stem`` (each level type defines it)."""
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """What the manifest records about this level."""
        return {'name': self.name, 'type': type(self).__name__}

    @classmethod
    def from_options(cls, name: str, opt: Dict[str, Any], scale: int, device: Optional[str]) -> 'SRLevel':
        """The level ``name`` from its remaining options (``name`` and ``type`` removed)."""
        return cls(name)


@LEVEL_REGISTRY.register_as('network')
class NetworkLevel(HoldsUpscaler, SRLevel):
    """A BasicSR network (any registered arch: MSRResNet, RRDBNet, the plugin's) run on the LR image.

    ``weights``: a BasicSR checkpoint (``params_ema`` / ``params``) or an official checkpoint in a
    layout :func:`~ranksrgan_plugin.checkpoints.detect_layout` knows (the paper's
    SRResNet / SRGAN / ESRGAN releases), converted to the arch's keys; loaded strictly.

    ``tile=0`` (default) runs the whole image at once. ``tile > 0`` cuts the LR image into ``tile`` x
    ``tile`` tiles with ``tile_pad`` pixels of context (clipped at the image edge), equal-shape tiles
    running ``batch_size`` at a time: only a memory measure, the output is the untiled one because
    ``tile_pad`` is at least the network's receptive-field radius (``'auto'``, the default, is that
    radius; an explicit smaller pad would change the output and is refused). "The untiled one" up to
    the last float bit: float32 conv / upsampling kernels (oneDNN, cuDNN) round differently for
    different input shapes, which can move a rare pixel by one grey level. The input runs in the
    network's dtype. Runs on ``device`` (default: CUDA when available). Inference is a
    :class:`~ranksrgan_plugin.utils.upscaler.TiledUpscaler` (``self.upscaler``; ``net``, ``tile``,
    ``tile_pad``, ``receptive_radius`` are its).
    """

    option_keys = ('network', 'weights', 'param_key', 'tile', 'tile_pad', 'batch_size', 'device')

    def __init__(self, name: str, network: Mapping[str, Any], weights: str, scale: int,
                 param_key: Optional[str] = None, tile: int = 0, tile_pad: Union[int, str] = 'auto',
                 batch_size: int = 4, device: Optional[str] = None) -> None:
        super().__init__(name)
        if not weights or not osp.isfile(weights):
            raise LevelError(f'Level {name!r}: weights file {weights!r} not found. Download the network\'s '
                             'checkpoint and set the level\'s `weights` to its path.')
        self.network_opt, self.weights, self.scale = dict(network), weights, scale
        net = build_network(deepcopy(self.network_opt))
        try:
            load_network_weights(net, weights, param_key, f'Level {name!r}')
        except CheckpointMismatchError as err:
            raise LevelError(str(err)) from err
        num_in_ch = int(self.network_opt.get('num_in_ch', 3))
        try:  # measured first: a network that is no integer upscaler fails the receptive-field probe obscurely
            measured = infer_scale(net.eval(), num_in_ch, f"Level {name!r}: the network {self.network_opt.get('type')} "
                                                   f'({weights})')
        except ScaleError as err:
            raise LevelError(str(err)) from err
        if measured != scale:
            raise LevelError(f"Level {name!r}: the network {self.network_opt.get('type')} ({weights}) upscales "
                             f"x{measured}, the rank dataset's `scale` is {scale}: give a x{scale} network, or set "
                             f'scale: {measured}.')
        try:
            self.upscaler = build_upscaler(net, scale, tile, tile_pad, batch_size, device, f'Level {name!r}',
                                           self._pad_below_receptive_field, num_in_ch)
        except TilingError as err:
            raise LevelError(str(err)) from err

    def _pad_below_receptive_field(self, tile_pad: int, radius: int) -> None:
        """A rank dataset's levels must not depend on the tiling: refuse the pad."""
        raise LevelError(f'Level {self.name!r}: tile_pad {tile_pad} is below the network\'s receptive-field '
                         f'radius ({radius} LR pixels); the tiles would change the SR images. '
                         f'Use tile_pad: auto (= {radius}), at least {radius}, or tile: 0.')

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        return self.upscaler(lr)

    def _run_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """The tiled pass alone (see :func:`~ranksrgan_plugin.utils.tiling.tiled_forward`)."""
        return self.upscaler.forward_tiled(x)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'network': self.network_opt, 'weights': osp.abspath(self.weights),
                'tile': self.tile, 'tile_pad': self.tile_pad, 'receptive_radius': self.receptive_radius}

    @classmethod
    def from_options(cls, name: str, opt: Dict[str, Any], scale: int, device: Optional[str]) -> 'NetworkLevel':
        """``network`` (required), ``weights`` and the keyword arguments; ``device`` defaults to the build's."""
        opt = dict(opt)
        opt.setdefault('device', device)
        return cls(name, opt.pop('network'), opt.pop('weights', None), scale, **opt)


@LEVEL_REGISTRY.register_as('folder')
class FolderLevel(SRLevel):
    """Precomputed SR images in a folder, matched to the source image by file stem."""

    option_keys = ('folder', 'suffix')

    def __init__(self, name: str, folder: str, suffix: str = '') -> None:
        super().__init__(name)
        if not osp.isdir(folder):
            raise LevelError(f'Level {name!r}: SR folder {folder} does not exist.')
        self.folder, self.suffix = folder, suffix
        self.files = {osp.splitext(f)[0]: f for f in sorted(_listdir_images(folder))}

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        file_name = self.files.get(stem + self.suffix)
        if file_name is None:
            raise LevelError(f'Level {self.name!r}: no SR image for {stem!r} in {self.folder}.')
        return read_image(osp.join(self.folder, file_name))

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'folder': self.folder, 'suffix': self.suffix}

    @classmethod
    def from_options(cls, name: str, opt: Dict[str, Any], scale: int, device: Optional[str]) -> 'FolderLevel':
        """``folder`` (required) and ``suffix``."""
        return cls(name, opt['folder'], opt.get('suffix', ''))


@LEVEL_REGISTRY.register_as('hr')
class HRLevel(SRLevel):
    """The ground truth HR image as a level (the paper's RankSRGAN-HR replaces ESRGAN by it)."""

    option_keys = ()

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        return hr


@LEVEL_REGISTRY.register_as('builtin')
class BuiltinLevel(SRLevel):
    """A classical upscaler from :data:`BUILTIN_UPSCALERS` (no weights needed)."""

    option_keys = ('method',)

    def __init__(self, name: str, method: str, scale: int) -> None:
        super().__init__(name)
        if method not in BUILTIN_UPSCALERS:
            raise LevelError(f'Level {name!r}: unknown builtin method {method!r}; '
                             f'choose from {sorted(BUILTIN_UPSCALERS)}.')
        self.method, self.scale = method, scale

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        return BUILTIN_UPSCALERS[self.method](lr, self.scale)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'method': self.method}

    @classmethod
    def from_options(cls, name: str, opt: Dict[str, Any], scale: int, device: Optional[str]) -> 'BuiltinLevel':
        """``method`` defaults to the level's name."""
        return cls(name, opt.get('method', name), scale)


def _listdir_images(folder: str):
    return [f for f in os.listdir(folder) if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS]


def read_image(path: str) -> np.ndarray:
    """A BGR uint8 image; a clear error when the file is not a readable image."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise LevelError(f'Cannot read image {path}.')
    return img


def build_level(opt: Mapping[str, Any], scale: int, device: Optional[str] = None) -> SRLevel:
    """A level from its options: ``{name, type: network|folder|hr|builtin, ...}`` (a :data:`LEVEL_REGISTRY` name)."""
    opt = dict(opt)
    name, kind = opt.pop('name', None), opt.pop('type', None)
    if not name:
        raise LevelError(f'A level needs a `name`: {dict(opt)}')
    if kind not in LEVEL_REGISTRY:
        raise LevelError(f'Level {name!r}: unknown type {kind!r}; use {_or_list(LEVEL_REGISTRY.names())}.')
    return LEVEL_REGISTRY.get(kind).from_options(name, opt, scale, device)


def _or_list(names: Sequence[str]) -> str:
    """``a, b, c or d``."""
    return ' or '.join(filter(None, [', '.join(names[:-1]), names[-1]]))
