"""Image preparation shared by the no-reference metrics (NIQE, Ma, PI) and the evaluation.

Batches of BGR images in [0, 255] as NumPy arrays or torch tensors: checks of the input order
(HWC / CHW / HW), the colour conversions (the Y channel as MATLAB's ``rgb2ycbcr`` on uint8 and as
BasicSR's ``to_y_channel``, OpenCV's gray as BasicSR's NIQE uses it), the border shave, and MATLAB's
bicubic ``imresize``.
"""
import math
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = ['INPUT_ORDERS', 'ImageBatch', 'as_batch', 'batch_layout', 'to_planes', 'shave', 'exact_scalar',
           'y_matlab', 'to_y_matlab', 'y_basicsr', 'gray_basicsr', 'matlab_resize', 'matlab_resize_uint8']

INPUT_ORDERS = ('HWC', 'CHW', 'HW')
BT601_Y_RGB = (65.481, 128.553, 24.966)  # BT.601 luma weights of R, G, B in [0, 1] -> Y in [16, 235]

ImageBatch = Union[np.ndarray, torch.Tensor, Sequence[Union[np.ndarray, torch.Tensor]]]


# ------------------------------------------------------------------------------ batches and layout
def as_batch(imgs: ImageBatch, who: str = 'niqe_batch') -> torch.Tensor:
    """A tensor view of ``imgs`` (no copy where possible); a sequence must hold equal-shape images."""
    if isinstance(imgs, torch.Tensor):
        return imgs
    if isinstance(imgs, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(imgs))
    items: List[torch.Tensor] = [as_batch(im, who) for im in imgs]
    if not items:
        raise ValueError(f'{who}: got an empty sequence of images')
    for i, item in enumerate(items):
        if item.shape != items[0].shape:
            raise ValueError(f'{who}: images in a batch must have equal shapes; image 0 is '
                             f'{tuple(items[0].shape)}, image {i} is {tuple(item.shape)}')
    return torch.stack(items)


def batch_layout(shape: Tuple[int, ...], input_order: str, who: str = 'niqe_batch') -> Tuple[int, int, Optional[int]]:
    """(height, width, channel dim or None) of a batch of the given shape, or a ValueError.

    (N, H, W) is one channel whatever the order; (N, H, W, C) for 'HWC' and (N, C, H, W) for 'CHW'
    must have 1 or 3 (BGR) channels.
    """
    if input_order not in INPUT_ORDERS:
        raise ValueError(f'{who}: input_order must be one of {INPUT_ORDERS}, got {input_order!r}')
    if len(shape) == 3:
        return shape[1], shape[2], None
    if len(shape) == 4 and input_order != 'HW':
        channel_dim = 3 if input_order == 'HWC' else 1
        if shape[channel_dim] not in (1, 3):
            raise ValueError(f'{who}: expected 1 or 3 channels (BGR) on dim {channel_dim} for '
                             f'{input_order!r}, got shape {tuple(shape)}')
        h, w = (shape[1], shape[2]) if input_order == 'HWC' else (shape[2], shape[3])
        return h, w, channel_dim
    raise ValueError(f'{who}: expected (N, H, W) or (N, H, W, C) / (N, C, H, W) images for '
                     f'input_order={input_order!r}, got shape {tuple(shape)}')


def to_planes(batch: torch.Tensor, channel_dim: Optional[int]) -> torch.Tensor:
    """A (N, C, H, W) view of a batch whose channel dim :func:`batch_layout` returned (C = 1 when None)."""
    if channel_dim is None:
        return batch.unsqueeze(1)
    return batch if channel_dim == 1 else batch.movedim(3, 1)


def shave(img: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels on each side of the last two dimensions."""
    return img[..., border:img.shape[-2] - border, border:img.shape[-1] - border] if border else img


def exact_scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor on ``like``'s device, for exact division.

    On CUDA, ``tensor / python_number`` multiplies by the reciprocal, which is not correctly rounded;
    dividing by a device tensor is a true IEEE division, like NumPy's (and torch's on the CPU).
    """
    return torch.tensor(value, dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------- colour conversions
def y_matlab(planes: torch.Tensor) -> torch.Tensor:
    """Y of MATLAB's ``rgb2ycbcr`` on uint8 of float64 (N, 3, H, W) BGR planes in [0, 255]: (N, H, W), integers.

    MATLAB's order of operations (w_r R + w_g G + w_b B + 16, then round half away from zero): a
    different order moves values near .5 to the other integer.
    """
    w_r, w_g, w_b = (w / 255 for w in BT601_Y_RGB)
    r, g, b = planes[:, 2], planes[:, 1], planes[:, 0]
    return torch.floor(w_r * r + w_g * g + w_b * b + 16 + 0.5)


def to_y_matlab(imgs: ImageBatch, input_order: str = 'HWC', crop_border: int = 0) -> torch.Tensor:
    """(N, H, W) float64 Y in [0, 255] of a BGR batch, rounded like MATLAB's uint8 ``rgb2ycbcr``, shaved.

    One-channel images ((N, H, W), or one channel on the channel dim) are used as they are.
    """
    t = as_batch(imgs, 'Y channel').to(torch.float64)
    _, _, channel_dim = batch_layout(tuple(t.shape), input_order, 'Y channel')
    planes = to_planes(t, channel_dim)
    y = planes[:, 0] if planes.shape[1] == 1 else y_matlab(planes)
    return shave(y, crop_border)


def y_basicsr(planes: torch.Tensor, work: Optional[torch.Tensor] = None,
              out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``to_y_channel`` of BasicSR on float32 (N, C, H, W) BGR planes in [0, 255]: unrounded float32 (N, H, W).

    BasicSR divides by 255 in float32, takes the BT.601 dot product in float64 (NumPy promotes the
    float32 image against the Python weights), divides by 255, rounds to float32 and multiplies by 255
    in float32. Separate multiplies and adds in that order reproduce it for every 8-bit colour.
    ``planes`` is overwritten; ``work`` is an optional float64 buffer of ``planes``' shape, ``out`` an
    optional float32 (N, H, W) tensor for the result.
    """
    planes /= exact_scalar(255.0, planes)
    if planes.shape[1] == 1:
        # to_y_channel leaves one-channel images as x / 255 * 255
        return torch.mul(planes[:, 0], 255.0, out=out)
    x = work if work is not None else torch.empty_like(planes, dtype=torch.float64)
    # float32 planes times float64 weights: computed in float64, like NumPy's promotion
    torch.mul(planes, torch.tensor(BT601_Y_RGB[::-1], dtype=x.dtype, device=x.device).view(1, 3, 1, 1), out=x)
    y = x[:, 0]
    y += x[:, 1]
    y += x[:, 2]
    y += 16.0
    y /= exact_scalar(255.0, y)
    out = y.float() if out is None else out.copy_(y)
    out *= 255.0
    return out


def gray_basicsr(planes: torch.Tensor) -> torch.Tensor:
    """BasicSR's ``cv2.cvtColor(img / 255., cv2.COLOR_BGR2GRAY) * 255.`` per image, by OpenCV itself.

    OpenCV's float32 BGR2GRAY uses fused multiply-adds in its SIMD body and plain ones in the tail of
    each row stripe, so it is called image by image on the CPU.
    """
    if planes.shape[1] != 3:
        raise ValueError(f"convert_to='gray' needs 3-channel BGR images (cv2 BGR2GRAY), got {planes.shape[1]}")
    import cv2

    bgr = planes.permute(0, 2, 3, 1).cpu().numpy()
    gray = [cv2.cvtColor(np.ascontiguousarray(im) / 255., cv2.COLOR_BGR2GRAY) * 255. for im in bgr]
    return torch.from_numpy(np.stack(gray)).to(planes.device)


# ------------------------------------------------------------------------- MATLAB imresize (bicubic)
@lru_cache(maxsize=32)
def _resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """(out_len, in_len) weights of MATLAB ``imresize`` along one dimension: bicubic (a = -0.5), symmetric
    edges, no antialiasing (only upsampling is needed here). BasicSR's ``calculate_weights_indices`` is the same
    kernel but in float32; these weights stay float64 to follow the float64 MATLAB code."""
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - 2)
    idx = left[:, None] + np.arange(6)[None, :]
    dist = np.abs(u[:, None] - idx)
    wts = np.where(dist <= 1, 1.5 * dist ** 3 - 2.5 * dist ** 2 + 1,
                   np.where(dist <= 2, -0.5 * dist ** 3 + 2.5 * dist ** 2 - 4 * dist + 2, 0.0))
    wts /= wts.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), 6), cols.ravel()), wts.ravel())
    return mat


def matlab_resize(x: torch.Tensor, size: Optional[Tuple[int, int]] = None, scale: Optional[float] = None
                  ) -> torch.Tensor:
    """MATLAB ``imresize(x, [h w])`` or ``imresize(x, scale)`` (bicubic, upsampling) of (..., H, W)."""
    h, w = x.shape[-2:]
    if size is None:
        size = (math.ceil(h * scale), math.ceil(w * scale))
    if tuple(size) == (h, w):
        return x
    sy, sx = (scale, scale) if scale is not None else (size[0] / h, size[1] / w)
    my = _resize_matrix_on(h, size[0], sy, x.device, x.dtype)
    mx = _resize_matrix_on(w, size[1], sx, x.device, x.dtype)
    return my @ x @ mx.T


@lru_cache(maxsize=64)
def _resize_matrix_on(in_len: int, out_len: int, scale: float, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
    """:func:`_resize_matrix` as a tensor, kept on ``device`` (no host-to-device copy per resize)."""
    return torch.from_numpy(_resize_matrix(in_len, out_len, scale)).to(device=device, dtype=dtype)


def matlab_resize_uint8(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` of a uint8 image, rounded to uint8.

    BasicSR's float32 port (``basicsr.utils.matlab_functions.imresize``, antialiased when downscaling).
    """
    from basicsr.utils.matlab_functions import imresize

    resized = imresize(img.astype(np.float32) / 255.0, scale)
    return np.clip(np.round(resized * 255.0), 0, 255).astype(np.uint8)
