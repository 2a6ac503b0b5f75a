"""An SR network run on BGR uint8 images (as cv2 and BasicSR read them), whole or tiled."""
import numbers
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .tiling import resolve_tiling, tiled_forward


def default_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``device``, or CUDA when available, else the CPU."""
    return torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))


class BadImageError(ValueError):
    """An image given to an upscaler is not BGR uint8 HWC (the message says what it is and how to convert it)."""


def check_bgr_uint8(img: object, channels: int = 3, what: str = 'The image') -> np.ndarray:
    """``img`` when it is a BGR uint8 HWC array of ``channels`` channels (as ``cv2.imread`` reads a colour file).

    Raises :class:`BadImageError` for ``None`` (what ``cv2.imread`` returns for a missing or unreadable
    file), a gray or 4-channel image, and any other dtype: a float image in [0, 1] would come out
    nearly black, not as an error.
    """
    if img is None:
        raise BadImageError(f'{what} is None: cv2.imread returns None for a missing or unreadable file.')
    if not isinstance(img, np.ndarray):
        raise BadImageError(f'{what} is a {type(img).__name__}, not a numpy array (BGR uint8, H x W x 3).')
    if img.dtype != np.uint8:
        hint = (' (a float image in [0, 1]: (img * 255).round().astype(np.uint8))'
                if np.issubdtype(img.dtype, np.floating) else '')
        raise BadImageError(f'{what} has dtype {img.dtype}; the network takes BGR uint8 in [0, 255]{hint}.')
    conversions = {(2, None): 'cv2.COLOR_GRAY2BGR', (3, 1): 'cv2.COLOR_GRAY2BGR', (3, 4): 'cv2.COLOR_BGRA2BGR'}
    shape = (img.ndim, img.shape[2] if img.ndim == 3 else None)
    if shape != (3, channels):
        convert = conversions.get(shape) if channels == 3 else None
        raise BadImageError(f'{what} has shape {img.shape}; the network takes H x W x {channels} (BGR)'
                            + (f': convert it with cv2.cvtColor(img, {convert}).' if convert else '.'))
    return img


def image_to_tensor(img: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A BGR uint8 HWC image as an RGB (1, C, H, W) tensor in [0, 1] of ``dtype``."""
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).to(dtype).div(255)[None]


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """The first image of an RGB (N, C, H, W) tensor as a BGR uint8 HWC image (clamped to [0, 1], rounded)."""
    out = x[0].clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return np.ascontiguousarray(out.transpose(1, 2, 0)[:, :, ::-1])


@dataclass
class TiledUpscaler:
    """``upscaler(img)``: the SR image of a BGR uint8 image; ``tile=0`` runs the whole image at once.

    The input runs in the network's dtype on ``device``; tiles as :func:`~.tiling.tiled_forward`
    (options checked by :func:`~.tiling.resolve_tiling`).
    """

    net: nn.Module
    scale: int
    device: torch.device
    tile: int = 0
    tile_pad: int = 0
    batch_size: int = 4
    receptive_radius: int = 0
    in_channels: int = 3

    @torch.no_grad()
    def __call__(self, img: np.ndarray) -> np.ndarray:
        """The SR image (BGR uint8) of ``img`` (BGR uint8; anything else: :class:`BadImageError`)."""
        check_bgr_uint8(img, self.in_channels)
        return tensor_to_image(self.forward(image_to_tensor(img, self.dtype)))

    @property
    def dtype(self) -> torch.dtype:
        """The network's precision (float32 for a network without parameters)."""
        param: Optional[torch.Tensor] = next(self.net.parameters(), None)
        return param.dtype if param is not None else torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for a (1, C, H, W) input, tiled when ``tile`` > 0."""
        return self.forward_tiled(x) if self.tile else self.net(x.to(self.device))

    def forward_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """The tiled pass (on the CPU), whatever ``tile`` is."""
        return tiled_forward(self.net, x, self.scale, self.tile, self.tile_pad, self.batch_size, self.device)


def build_upscaler(net: nn.Module, scale: Optional[int], tile: int, tile_pad: Union[int, str], batch_size: int,
                   device: Union[str, torch.device, None], name: str, on_small_pad: Callable[[int, int], None],
                   num_in_ch: int = 3) -> TiledUpscaler:
    """``net`` in eval mode on ``device`` (default: CUDA when available) with checked tiling options.

    ``scale=None`` measures it (:func:`infer_scale`; a given one is the caller's to check). See
    :func:`~.tiling.resolve_tiling` for ``tile_pad='auto'``, ``name`` (starts the ``TilingError``
    messages) and ``on_small_pad``; ``batch_size`` is at least 1.
    """
    device = default_device(device)
    net = net.eval().to(device)
    tiling = resolve_tiling(net, tile, tile_pad, name, on_small_pad, num_in_ch)
    if scale is None:
        scale = infer_scale(net, num_in_ch, name)
    return TiledUpscaler(net, scale, device, tiling.tile, tiling.tile_pad, max(1, batch_size),
                         tiling.receptive_radius, num_in_ch)


class HoldsUpscaler:
    """The network and tiling of ``self.upscaler`` (a :class:`TiledUpscaler`) as attributes of its holder."""

    upscaler: TiledUpscaler

    @property
    def net(self) -> nn.Module:
        """The network (in eval mode, on its device)."""
        return self.upscaler.net

    @property
    def tile(self) -> int:
        """LR tile side (0: untiled)."""
        return self.upscaler.tile

    @property
    def tile_pad(self) -> int:
        """LR pixels of context around each tile."""
        return self.upscaler.tile_pad

    @tile_pad.setter
    def tile_pad(self, value: int) -> None:
        self.upscaler.tile_pad = value

    @property
    def receptive_radius(self) -> int:
        """The network's receptive-field radius in LR pixels (0 when unbounded and untiled)."""
        return self.upscaler.receptive_radius


class ScaleError(ValueError):
    """A network whose output is not its input upscaled by one integer factor, or a scale it does not have."""


PROBE_SIDE = 16  # LR side of the scale probe: a multiple of the downsampling of the supported networks


def infer_scale(net: torch.nn.Module, num_in_ch: int = 3, name: str = 'the network') -> int:
    """The upscaling factor of ``net``, measured by one forward pass of a 16x16 zero input.

    Raises :class:`ScaleError` (starting with ``name``) when the output is not an image whose sides are
    the same integer multiple of the input's (a Ranker, a fractional or anisotropic resampler).
    """
    param = next(net.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device('cpu'), torch.float32)
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, num_in_ch, PROBE_SIDE, PROBE_SIDE, device=device, dtype=dtype))
    except RuntimeError as err:  # e.g. a Ranker's kernels outgrow its downsampled input
        raise ScaleError(f'{name} cannot run on a (1, {num_in_ch}, {PROBE_SIDE}, {PROBE_SIDE}) input to measure its '
                         f'scale (is it a super-resolution generator?): {err}') from err
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if (not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[-1] != out.shape[-2]
            or out.shape[-1] < PROBE_SIDE or out.shape[-1] % PROBE_SIDE):
        raise ScaleError(f'{name} maps a (1, {num_in_ch}, {PROBE_SIDE}, {PROBE_SIDE}) input to {shape}: not an '
                         'image upscaled by an integer factor (is it a super-resolution generator?).')
    return out.shape[-1] // PROBE_SIDE


def check_scale(net: torch.nn.Module, scale: Optional[int], name: str, option: str = 'scale',
                num_in_ch: int = 3) -> int:
    """The measured upscaling factor of ``net``; ``scale`` (``None``: not given) must equal it.

    ``name`` says which network (e.g. its weights file) and ``option`` what set ``scale``: the
    :class:`ScaleError` names both and says what to do.
    """
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1):
        raise ScaleError(f'{option} must be a positive integer (or left out: measured), got {scale!r}.')
    measured = infer_scale(net, num_in_ch, name)
    if scale is not None and scale != measured:
        raise ScaleError(f'{option} {scale!r} does not match {name}: the network upscales x{measured}. '
                         f'Leave {option} out (the scale is measured from the network), set it to {measured}, '
                         f'or give x{scale} weights.')
    return measured
