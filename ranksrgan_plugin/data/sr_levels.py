"""Sources of the *levels* of a rank dataset: SR images of rising perceptual quality.

A level turns one source image (its HR ground truth and its LR input) into an SR image of the
HR's size. Kinds: ``network`` (any BasicSR arch with a weights file, e.g. the paper's SRResNet /
SRGAN / ESRGAN, whose official checkpoints are converted on load), ``folder`` (precomputed SR
images matched by name), ``hr`` (the ground truth itself: the paper's RankSRGAN-HR) and
``builtin`` (classical upscalers, so the tool runs with no weights at all). Images are BGR uint8
HWC, as cv2 and BasicSR read them.
"""
import os
import os.path as osp
from copy import deepcopy
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.utils.matlab_functions import imresize

from ..archs.official_weights import (
    UnknownCheckpointLayout,
    convert_official_checkpoint,
    detect_layout,
    unwrap_state_dict,
)
from .rank_dataset_format import IMAGE_EXTENSIONS
from .receptive_field import ReceptiveField, UnboundedReceptiveField, receptive_field


class LevelError(ValueError):
    """A level is misconfigured or produced an unusable image."""


def matlab_bicubic(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of a uint8 image (BasicSR's port), rounded to uint8."""
    resized = imresize(img.astype(np.float32) / 255.0, scale)
    return np.clip(np.round(resized * 255.0), 0, 255).astype(np.uint8)


def unsharp_mask(img: np.ndarray, sigma: float = 2.0, amount: float = 1.5) -> np.ndarray:
    """Classical unsharp masking: ``img + amount * (img - gaussian_blur(img))``."""
    img_f = img.astype(np.float32)
    blurred = cv2.GaussianBlur(img_f, (0, 0), sigma)
    return np.clip(np.round(img_f + amount * (img_f - blurred)), 0, 255).astype(np.uint8)


def _cv2_upscale(interpolation: int) -> Callable[[np.ndarray, int], np.ndarray]:
    def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
        return cv2.resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale), interpolation=interpolation)

    return upscale


BUILTIN_UPSCALERS: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    'nearest': _cv2_upscale(cv2.INTER_NEAREST),
    'bilinear': _cv2_upscale(cv2.INTER_LINEAR),
    'bicubic': lambda lr, scale: matlab_bicubic(lr, scale),
    'lanczos': _cv2_upscale(cv2.INTER_LANCZOS4),
    'sharpened': lambda lr, scale: unsharp_mask(matlab_bicubic(lr, scale)),
}


class SRLevel:
    """One level of a rank dataset: ``level(lr, hr, stem)`` returns an SR image of ``hr``'s size."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        sr = self.upscale(lr, hr, stem)
        if sr.shape != hr.shape:
            raise LevelError(f'Level {self.name!r} gave a {sr.shape} image for {stem!r}, the HR image is {hr.shape}.')
        return sr

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """What the manifest records about this level."""
        return {'name': self.name, 'type': type(self).__name__}


class HRLevel(SRLevel):
    """The ground truth HR image as a level (the paper's RankSRGAN-HR replaces ESRGAN by it)."""

    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        return hr


class BuiltinLevel(SRLevel):
    """A classical upscaler from :data:`BUILTIN_UPSCALERS` (no weights needed)."""

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


class FolderLevel(SRLevel):
    """Precomputed SR images in a folder, matched to the source image by file stem."""

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


class NetworkLevel(SRLevel):
    """A BasicSR network (any registered arch: MSRResNet, RRDBNet, the plugin's) run on the LR image.

    ``weights``: a BasicSR checkpoint (``params_ema`` / ``params``) or an official checkpoint in a
    layout :func:`~ranksrgan_plugin.archs.official_weights.detect_layout` knows (the paper's
    SRResNet / SRGAN / ESRGAN releases), converted to the arch's keys; loaded strictly.

    ``tile=0`` (default) runs the whole image at once. ``tile > 0`` cuts the LR image into ``tile`` x
    ``tile`` tiles with ``tile_pad`` pixels of context (clipped at the image edge), equal-shape tiles
    running ``batch_size`` at a time: only a memory measure, the output is the untiled one because
    ``tile_pad`` is at least the network's receptive-field radius (``'auto'``, the default, is that
    radius; an explicit smaller pad would change the output and is refused). "The untiled one" up to
    the last float bit: float32 conv / upsampling kernels (oneDNN, cuDNN) round differently for
    different input shapes, which can move a rare pixel by one grey level. The input runs in the
    network's dtype. Runs on ``device`` (default: CUDA when available).
    """

    def __init__(self, name: str, network: Mapping[str, Any], weights: str, scale: int,
                 param_key: Optional[str] = None, tile: int = 0, tile_pad: Union[int, str] = 'auto',
                 batch_size: int = 4, device: Optional[str] = None) -> None:
        super().__init__(name)
        if not weights or not osp.isfile(weights):
            raise LevelError(f'Level {name!r}: weights file {weights!r} not found. Download the network\'s '
                             'checkpoint and set the level\'s `weights` to its path.')
        self.network_opt, self.weights, self.scale = dict(network), weights, scale
        net = build_network(deepcopy(self.network_opt))
        load_network_weights(net, weights, param_key, f'Level {name!r}')
        self._setup(net, tile, tile_pad, batch_size, device)

    def _setup(self, net: torch.nn.Module, tile: int, tile_pad: Union[int, str], batch_size: int,
               device: Optional[str]) -> None:
        """Device, network in eval mode, tiling (the pad resolved against the receptive field)."""
        self.device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        self.net = net.eval().to(self.device)
        self.batch_size = max(1, batch_size)
        self.tile = _non_negative(tile, 'tile', self.name)
        field = self._receptive_field()
        self.receptive_radius, self.alignment = field.radius, field.alignment
        self._check_aligned('tile', self.tile)
        self.tile_pad = self._resolve_pad(tile_pad)

    def _receptive_field(self) -> ReceptiveField:
        """The network's receptive field; an unbounded one (global pooling) is an error when tiling only."""
        try:
            return receptive_field(self.net, int(self.network_opt.get('num_in_ch', 3)))
        except UnboundedReceptiveField as err:
            if self.tile:
                raise LevelError(f'Level {self.name!r}: {err}; run it untiled (tile: 0).') from err
            return ReceptiveField(radius=0)  # untiled: no pad is used

    def _resolve_pad(self, tile_pad: Union[int, str]) -> int:
        """``'auto'`` -> the receptive-field radius; an explicit pad is checked against it when tiling."""
        if tile_pad == 'auto':
            return self.receptive_radius
        tile_pad = _non_negative(tile_pad, 'tile_pad', self.name)
        if self.tile and tile_pad < self.receptive_radius:
            self._pad_below_receptive_field(tile_pad)
        return self._check_aligned('tile_pad', tile_pad) if self.tile else tile_pad

    def _check_aligned(self, what: str, value: int) -> int:
        """``value`` when it is a multiple of the network's downsampling (tiles keep the image's grid)."""
        if value % self.alignment:
            raise LevelError(f'Level {self.name!r}: {what} {value} is not a multiple of {self.alignment}, the '
                             'network\'s downsampling; tiles would not see the untiled pixel grid.')
        return value

    def _pad_below_receptive_field(self, tile_pad: int) -> None:
        """A rank dataset's levels must not depend on the tiling: refuse the pad."""
        raise LevelError(f'Level {self.name!r}: tile_pad {tile_pad} is below the network\'s receptive-field '
                         f'radius ({self.receptive_radius} LR pixels); the tiles would change the SR images. '
                         f'Use tile_pad: auto (= {self.receptive_radius}), at least {self.receptive_radius}, '
                         'or tile: 0.')

    @torch.no_grad()
    def upscale(self, lr: np.ndarray, hr: np.ndarray, stem: str) -> np.ndarray:
        param = next(self.net.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32  # the network's precision
        x = torch.from_numpy(np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1))).to(dtype).div(255)
        out = self._run_tiled(x[None]) if self.tile else self.net(x[None].to(self.device))
        out = out[0].clamp(0, 1).mul(255).round().byte().cpu().numpy()
        return np.ascontiguousarray(out.transpose(1, 2, 0)[:, :, ::-1])

    def _run_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """Tiles with ``tile_pad`` pixels of real context (clipped at the image edge, where the network's
        own zero padding applies as in an untiled run); tiles of equal shape run in batches. A side no
        longer than ``tile + 2 * tile_pad`` (the largest padded tile) is not cut: one tile spans it."""
        _, _, h, w = x.shape
        p, s = self.tile_pad, self.scale
        th, tw = (side if side <= self.tile + 2 * p else self.tile for side in (h, w))
        groups: Dict[Tuple[int, ...], List[Tuple[torch.Tensor, Tuple[int, int, int, int]]]] = {}
        for top in range(0, h, th):
            for left in range(0, w, tw):
                y0, x0 = max(top - p, 0), max(left - p, 0)
                tile = x[0, :, y0:min(top + th + p, h), x0:min(left + tw + p, w)]
                keep = (top, left, top - y0, left - x0)  # output position, offset of the kept part in the tile
                groups.setdefault(tuple(tile.shape), []).append((tile, keep))
        out = None
        for jobs in groups.values():
            for start in range(0, len(jobs), self.batch_size):
                chunk = jobs[start:start + self.batch_size]
                results = self.net(torch.stack([tile for tile, _ in chunk]).to(self.device)).cpu()
                if out is None:
                    out = results.new_zeros(1, results.shape[1], h * s, w * s)
                for result, (top, left, dy, dx) in zip(results, (keep for _, keep in chunk)):
                    kh, kw = min(th, h - top), min(tw, w - left)
                    out[0, :, top * s:(top + kh) * s, left * s:(left + kw) * s] = \
                        result[:, dy * s:(dy + kh) * s, dx * s:(dx + kw) * s]
        return out

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'network': self.network_opt, 'weights': osp.abspath(self.weights),
                'tile': self.tile, 'tile_pad': self.tile_pad, 'receptive_radius': self.receptive_radius}


def _non_negative(value: Any, what: str, name: str) -> int:
    """``value`` when it is a pixel count >= 0 (``tile``: 0 = untiled; ``tile_pad``: or ``auto``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        hint = '0 (untiled) or a positive pixel count' if what == 'tile' else '`auto` or a pixel count >= 0'
        raise LevelError(f'Level {name!r}: {what} must be {hint}, got {value!r}.')
    return value


def load_network_weights(net: torch.nn.Module, weights: str, param_key: Optional[str] = None,
                         what: str = 'Network') -> Optional[str]:
    """Load the checkpoint file ``weights`` into ``net`` strictly (see :func:`arch_state_dict`); the
    official layout it was converted from, if any. ``what`` starts the error messages."""
    checkpoint = torch.load(weights, map_location='cpu', weights_only=True)
    state_dict, layout, options = arch_state_dict(checkpoint, param_key, weights)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        read = f' (an official {layout} checkpoint: {options})' if layout else ''
        raise LevelError(f'{what}: {weights}{read} does not fit the network {type(net).__name__}: {err}') from err
    return layout


StateDictWithOrigin = Tuple[Dict[str, torch.Tensor], Optional[str], Optional[Dict[str, Any]]]


def arch_state_dict(checkpoint: Mapping[str, Any], param_key: Optional[str] = None,
                    source: str = 'checkpoint') -> StateDictWithOrigin:
    """(state_dict with the arch's keys, official layout or ``None``, options read off an official one).

    A BasicSR checkpoint (``param_key``, else ``params_ema``, else ``params``) is returned as it is; an
    official RankSRGAN / SRResNet / SRGAN / ESRGAN checkpoint (a layout
    :func:`~ranksrgan_plugin.archs.official_weights.detect_layout` knows) is converted to the keys of
    the plugin's / BasicSR's class.
    """
    if param_key:
        if param_key not in checkpoint:
            raise LevelError(f'{source} has no {param_key!r} entry (has {list(checkpoint)[:5]}).')
        checkpoint = checkpoint[param_key]
    state_dict = unwrap_state_dict(checkpoint)
    try:
        layout = detect_layout(state_dict)
    except UnknownCheckpointLayout:
        return state_dict, None, None  # a BasicSR arch's own keys
    try:
        layout, options, converted = convert_official_checkpoint(state_dict)
    except (UnknownCheckpointLayout, RuntimeError) as err:
        raise LevelError(f'{source}: a {layout} checkpoint that does not convert: {err}') from err
    return converted.state_dict(), layout, options


def _listdir_images(folder: str):
    return [f for f in os.listdir(folder) if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS]


def read_image(path: str) -> np.ndarray:
    """A BGR uint8 image; a clear error when the file is not a readable image."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise LevelError(f'Cannot read image {path}.')
    return img


def build_level(opt: Mapping[str, Any], scale: int, device: Optional[str] = None) -> SRLevel:
    """A level from its options: ``{name, type: network|folder|hr|builtin, ...}``."""
    opt = dict(opt)
    name, kind = opt.pop('name', None), opt.pop('type', None)
    if not name:
        raise LevelError(f'A level needs a `name`: {dict(opt)}')
    if kind == 'hr':
        return HRLevel(name)
    if kind == 'builtin':
        return BuiltinLevel(name, opt.get('method', name), scale)
    if kind == 'folder':
        return FolderLevel(name, opt['folder'], opt.get('suffix', ''))
    if kind == 'network':
        opt.setdefault('device', device)
        return NetworkLevel(name, opt.pop('network'), opt.pop('weights', None), scale, **opt)
    raise LevelError(f'Level {name!r}: unknown type {kind!r}; use network, folder, hr or builtin.')
