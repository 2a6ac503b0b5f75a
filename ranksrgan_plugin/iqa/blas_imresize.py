"""BasicSR's ``imresize(img, 0.5)`` (MATLAB bicubic, antialiased) for NIQE's second scale, bit for bit.

Why this exists: BasicSR computes every output row, then every output column, as one float32
``torch.mv`` over 8 taps; the summation order inside the CPU BLAS (MKL) depends on the memory
alignment of each row, and NIQE's normalisation amplifies those last-bit differences to ~1e-3 in the
score. So the batched NIQE runs this step on the CPU with the very same ``mv`` calls, batched by laying
the images out so that every row keeps BasicSR's length and alignment. See ``docs/niqe.md``.
"""
import functools
import math
from typing import List, Tuple

import torch

from .image_prep import exact_scalar
from .scratch import Scratch

__all__ = ['imresize_half']


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' bicubic kernel (a = -0.5), MATLAB's ``imresize`` cubic."""
    absx = torch.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    inner = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1).type_as(absx)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2)).type_as(absx)
    return inner + outer


@functools.cache
def _half_resize_taps(in_len: int) -> Tuple[List[int], torch.Tensor, int, int]:
    """MATLAB ``imresize(x, 0.5)`` along one axis, as BasicSR's ``calculate_weights_indices`` sets it up.

    Bicubic with antialiasing (the kernel stretched by 1/scale), weights computed in float32 with the
    same operations as BasicSR. Returns the first tap of every output pixel as an index into the
    symmetrically padded input, the (out_len, taps) float32 weights, and the padding before / after.
    """
    scale = 0.5
    out_len = math.ceil(in_len * scale)
    kernel_width = 4 / scale
    x = torch.linspace(1, out_len, out_len)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left.view(out_len, 1) + torch.linspace(0, taps - 1, taps).view(1, taps)
    weights = scale * _cubic((u.view(out_len, 1) - indices) * scale)
    weights = weights / torch.sum(weights, 1).view(out_len, 1)
    # Like MATLAB, drop the first / last tap column when it is zero in some row.
    zero_count = torch.sum(weights == 0, 0)
    keep = torch.ones(taps, dtype=torch.bool)
    keep[0] = bool(zero_count[0] == 0)
    keep[-1] = bool(zero_count[-1] == 0)
    indices, weights = indices[:, keep], weights[:, keep].contiguous()
    pad_before = int(-indices.min()) + 1
    pad_after = int(indices.max()) - in_len
    starts = (indices[:, 0] + pad_before - 1).long().tolist()
    return starts, weights, pad_before, pad_after


def _mirror_borders(buf: torch.Tensor, dim: int, before: int, size: int, after: int) -> None:
    """Fill MATLAB 'symmetric' padding in place around ``buf[before:before + size]`` along ``dim``.

    The edge pixel is repeated: index -1 reads pixel 0, -2 reads pixel 1.
    """
    buf.narrow(dim, 0, before).copy_(buf.narrow(dim, before, before).flip(dim))
    buf.narrow(dim, before + size, after).copy_(buf.narrow(dim, before + size - after, after).flip(dim))


def imresize_half(img: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """``imresize(img / 255., 0.5) * 255.`` of BasicSR on a float32 (N, H, W) batch (H and W multiples of 96).

    The N images are laid out so that every row of both passes keeps BasicSR's length and alignment.
    """
    cpu = torch.device('cpu')
    n, h, w = img.shape
    starts_h, weights_h, before_h, after_h = _half_resize_taps(h)
    starts_w, weights_w, before_w, after_w = _half_resize_taps(w)
    out_h, out_w = len(starts_h), len(starts_w)
    # Pass 1 (rows): (H_pad, N, W), so that one mv covers output row i of all images.
    padded = scratch.get('resize_rows_in', (before_h + h + after_h, n, w), device=cpu)
    torch.div(img.permute(1, 0, 2).cpu(), exact_scalar(255.0, padded), out=padded[before_h:before_h + h])
    _mirror_borders(padded, 0, before_h, h, after_h)
    padded = padded.view(-1, n * w)
    rows = scratch.get('resize_rows_out', (out_h, n * w), device=cpu)
    taps = weights_h.shape[1]
    for i, start in enumerate(starts_h):
        torch.mv(padded[start:start + taps].t(), weights_h[i], out=rows[i])
    # Pass 2 (columns): (N * out_h, W_pad); every row starts at the same alignment as in BasicSR.
    padded = scratch.get('resize_cols_in', (n, out_h, before_w + w + after_w), device=cpu)
    padded[:, :, before_w:before_w + w] = rows.view(out_h, n, w).permute(1, 0, 2)
    _mirror_borders(padded, 2, before_w, w, after_w)
    padded = padded.view(n * out_h, -1)
    cols = scratch.get('resize_cols_out', (out_w, n * out_h), device=cpu)
    taps = weights_w.shape[1]
    for i, start in enumerate(starts_w):
        torch.mv(padded[:, start:start + taps], weights_w[i], out=cols[i])
    return (cols.view(out_w, n, out_h).permute(1, 2, 0) * 255.0).to(img.device)


