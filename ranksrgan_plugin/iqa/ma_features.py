"""The 138 features of Ma et al.'s no-reference SR metric (CVIU 2017), as the authors' MATLAB ``feature_all.m``.

Three groups, computed on the Y channel (uint8 values as MATLAB's ``rgb2ycbcr`` gives them):

(a) ``dct`` (18 = 3 scales x 6): a 3-level Gaussian pyramid of Y / 255 (``fspecial('gaussian', 3)``,
    ``imfilter`` zero padding, every second pixel); each level cut by ``blkproc(I, [3 3], [2 2], ...)``
    into 7x7 zero-padded blocks; per block the GGD shape of the AC coefficients of ``dct2``, the
    coefficient of variation of |AC| and the variance of that coefficient over three orientation groups;
    pooled over the blocks by the mean of the extreme 10% and the mean of all (``block_dct.m``);
(b) ``gsm`` (45): a matlabPyrTools ``buildSFpyr(Y, 2, 5)`` steerable pyramid of Y in [0, 255], divisive
    normalisation (``norm_sender_normalized.m``), then GGD shapes per band and per orientation and the
    contrast-structure term of SSIM between bands (``global_gsm.m``, ``ssim_index_new.m``);
(c) ``svd`` (75 = 3 scales x 25): singular values of ``im2col(level, [5 5], 'distinct')``.

The definitions follow the authors' MIT-licensed MATLAB code (github.com/chaoma99/sr-metric and the
libraries it calls); this is new code, batched over equal-size images in torch (float64, CPU or CUDA).
``docs/ma_metric.md`` lists where we had to choose an interpretation and how close the result is to the
official code's output.
"""
import math
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .image_prep import exact_scalar, matlab_resize

__all__ = ['FEATURE_SIZES', 'GROUPS', 'MIN_SIZE', 'ggd_shape', 'coeff_variation', 'gauss_pyramid', 'dct_features',
           'svd_features', 'steerable_pyramid', 'gsm_normalise', 'contrast_structure', 'pairwise_contrast_structure',
           'gsm_features', 'default_chunk', 'ma_features_batch', 'ma_features']

NUM_SCALES = 3
DCT_CELL, DCT_BORDER = 3, 2  # blkproc(I, [3 3], [2 2], fun): 7x7 blocks centred on 3x3 cells
DCT_BLOCK = DCT_CELL + 2 * DCT_BORDER
SVD_PATCH = 5
PYR_SCALES, PYR_BANDS = 2, 6
GUARDBAND = 16
GROUPS = ('dct', 'gsm', 'svd')
FEATURE_SIZES = {'dct': 6 * NUM_SCALES,
                 'gsm': PYR_SCALES * PYR_BANDS * 2 + PYR_BANDS + PYR_BANDS * (PYR_BANDS - 1) // 2,
                 'svd': SVD_PATCH * SVD_PATCH * NUM_SCALES}
MIN_SIZE = 2 * GUARDBAND + 16  # smallest side the guard band and the 11x11 SSIM window leave room for
_RHO_EPS = 1e-7  # gama_gen_gauss and coeff_var_gen_gauss: denominator + 0.0000001
_ORIENT_EPS = 1e-8  # oriented*_dct_rho_config3: denominator + 0.00000001
_DCT_ROUNDOFF = 1e-10  # |DCT coefficient| below this is float round-off on [0, 1] data (flat blocks)

Images = Union[np.ndarray, torch.Tensor]

_CACHE: 'OrderedDict[tuple, object]' = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def _cached(key: tuple, like: torch.Tensor, make: Callable[[], object]) -> object:
    """``make()`` (constant tables, masks, index vectors) once per (key, device, dtype): built on the host or on
    ``like``'s device, kept there, so that the hot path copies nothing from the host (least recently used dropped)."""
    k = key + (like.device, like.dtype)
    with _CACHE_LOCK:
        value = _CACHE.get(k)
        if value is not None:
            _CACHE.move_to_end(k)
            return value
    with torch.inference_mode(False), torch.no_grad():  # plain tensors, usable in and out of inference mode
        value = make()
    with _CACHE_LOCK:
        _CACHE[k] = value
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def _const(key: tuple, array: Callable[[], np.ndarray], like: torch.Tensor, dtype: Optional[torch.dtype] = None
           ) -> torch.Tensor:
    """A NumPy constant as a tensor on ``like``'s device (``like``'s dtype unless ``dtype``), cached."""
    return _cached(key + (dtype,), like, lambda: torch.from_numpy(np.ascontiguousarray(array())).to(
        device=like.device, dtype=dtype or like.dtype))


# ----------------------------------------------------------------------------------- shared statistics
@lru_cache(maxsize=1)
def _ggd_table() -> Tuple[np.ndarray, np.ndarray]:
    from scipy.special import gamma

    g = 0.03 + 0.001 * np.arange(9971)  # 0.03:0.001:10
    return g, gamma(1 / g) * gamma(3 / g) / gamma(2 / g) ** 2  # r(g), decreasing


def ggd_shape(x: torch.Tensor) -> torch.Tensor:
    """GGD shape along the last dim by moment matching (``gama_gen_gauss.m``).

    rho = var(x) / (mean|x - mean(x)|^2 + 1e-7) (unbiased var); the answer is the g of the table
    g = 0.03:0.001:10 whose r(g) = G(1/g) G(3/g) / G(2/g)^2 is nearest to rho (the first one on a tie, like
    ``[~, idx] = min(abs(r - rho))``). A constant sample (rho = 0) gets the largest g, 10.
    """
    mean = x.mean(-1, keepdim=True)
    return _ggd_of_rho(x.var(-1, unbiased=True) / ((x - mean).abs().mean(-1) ** 2 + _RHO_EPS))


def _ggd_of_rho(rho: torch.Tensor) -> torch.Tensor:
    """The g of the table g = 0.03:0.001:10 whose r(g) is nearest to ``rho`` (the first one on a tie)."""
    x = rho
    size = len(_ggd_table()[1])
    ratio = _const(('ggd_r',), lambda: _ggd_table()[1], x)
    ascending = _const(('ggd_r_ascending',), lambda: _ggd_table()[1][::-1], x)
    above = size - torch.searchsorted(ascending, rho.contiguous(), side='left')  # #{j: r(j) >= rho}
    j = (above - 1).clamp(0, size - 1)  # last table entry with r >= rho (r decreases with g)
    k = above.clamp(0, size - 1)  # first entry with r < rho
    idx = torch.where((ratio[j] - rho).abs() <= (ratio[k] - rho).abs(), j, k)
    return _const(('ggd_g',), lambda: _ggd_table()[0], x)[idx]


def coeff_variation(x: torch.Tensor, eps: float = _RHO_EPS) -> torch.Tensor:
    """std(|x|) / (mean(|x|) + eps) along the last dim (unbiased std; ``coeff_var_gen_gauss.m``)."""
    a = x.abs()
    return a.std(-1, unbiased=True) / (a.mean(-1) + eps)


# --------------------------------------------------------------------------------- (a) DCT statistics
@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing='ij')
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d  # orthonormal DCT-II (MATLAB dct / dct2)


@lru_cache(maxsize=1)
def _orientation_masks() -> np.ndarray:
    """Three (7, 7) masks of AC coefficients (``oriented{1,2,3}_dct_rho_config3.m`` for 7x7 blocks)."""
    m = np.zeros((3, DCT_BLOCK, DCT_BLOCK), dtype=bool)
    for row, start in ((0, 1), (1, 2), (2, 4), (3, 5)):
        m[0, row, start:] = True
    for row, (a, b) in ((1, (1, 2)), (2, (2, 4)), (3, (2, 5)), (4, (3, 7)), (5, (4, 7)), (6, (4, 7))):
        m[1, row, a:b] = True
    m[2] = m[0].T
    return m


def _dct_blocks(img: torch.Tensor) -> torch.Tensor:
    """(N, B, 7, 7) blocks of ``blkproc(I, [3 3], [2 2], fun)``: zero border 2, image zero-filled to 3 | size."""
    _, h, w = img.shape
    x = F.pad(img, (DCT_BORDER, DCT_BORDER + (-w % DCT_CELL), DCT_BORDER, DCT_BORDER + (-h % DCT_CELL)))
    blocks = x.unfold(1, DCT_BLOCK, DCT_CELL).unfold(2, DCT_BLOCK, DCT_CELL)
    return blocks.reshape(img.shape[0], -1, DCT_BLOCK, DCT_BLOCK)


@lru_cache(maxsize=1)
def _dct2_ac_rows() -> np.ndarray:
    """(48, 49) ``dct2`` of a row-major 7x7 block as one matrix, AC coefficients only (the DC term is not used),
    ordered by orientation group 1, 2, 3 (each in row-major order, as ``coef[mask]`` takes them)."""
    masks = _orientation_masks().reshape(3, -1)
    d = _dct_matrix(DCT_BLOCK)
    return np.kron(d, d)[np.concatenate([np.flatnonzero(m) for m in masks])]


@lru_cache(maxsize=1)
def _dct_groups() -> np.ndarray:
    """(48, 3) indicator columns of the orientation groups (16 coefficients each) in :func:`_dct2_ac_rows` order."""
    return np.kron(np.eye(3), np.ones((DCT_BLOCK * DCT_BLOCK // 3, 1)))


def _block_statistics(blocks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GGD shape, coefficient of variation and orientation statistic of each (N, B, 49) block.

    The 48 AC coefficients come from one GEMM for all blocks; the per-group sums are GEMMs with indicator
    columns. Means and unbiased variances are two-pass, as ``var``/``std``.
    """
    ac = blocks @ _const(('dct2_ac_rows',), _dct2_ac_rows, blocks).T  # N, B, 48
    ac.masked_fill_(ac.abs() < _DCT_ROUNDOFF, 0.0)
    n = ac.shape[-1]
    # GGD shape of the AC coefficients (gama_gen_gauss): var / (mean |x - mean|^2 + eps)
    dev = ac - ac.mean(-1, keepdim=True)
    var = dev.square().sum(-1) / (n - 1)
    gamma = _ggd_of_rho(var / (dev.abs_().mean(-1) ** 2 + _RHO_EPS))
    # coefficient of variation of |x| (std / (mean + eps)), over all 48 and per orientation group
    mag = ac.abs_()
    mean = mag.mean(-1, keepdim=True)
    cv = ((mag - mean).square_().sum(-1) / (n - 1)).sqrt_() / (mean[..., 0] + _RHO_EPS)
    groups = _const(('dct_groups',), _dct_groups, blocks)  # 48, 3
    size = n // 3
    group_mean = (mag @ groups) / size  # N, B, 3
    group_var = (mag - group_mean @ groups.T).square_() @ groups / (size - 1)
    ori = (group_var.sqrt_() / (group_mean + _ORIENT_EPS)).var(-1, unbiased=True)
    return gamma, cv, ori


def _pool(gamma: torch.Tensor, cv: torch.Tensor, ori: torch.Tensor) -> torch.Tensor:
    """(N, 6) ``block_dct`` pooling of per-block statistics (N, B): the mean of the lowest 10% (``s(1:ceil(0.1 n))``)
    of gamma, the mean of the highest 10% and one more (``s(floor(0.9 n):end)``) of cv and orientation, the means."""
    n = gamma.shape[-1]
    low, high = math.ceil(0.1 * n), max(math.floor(0.9 * n) - 1, 0)
    s_gamma = torch.sort(gamma, dim=-1).values
    s_cv_ori = torch.sort(torch.stack([cv, ori]), dim=-1).values
    return torch.stack([s_gamma[..., :low].mean(-1), gamma.mean(-1), s_cv_ori[0, :, high:].mean(-1), cv.mean(-1),
                        s_cv_ori[1, :, high:].mean(-1), ori.mean(-1)], dim=1)


def dct_features(img: torch.Tensor) -> torch.Tensor:
    """(N, 6) ``block_dct`` features of one pyramid level (N, H, W) in [0, 1]:
    [gamma low 10%, gamma mean, cv high 10%, cv mean, orientation high 10%, orientation mean]."""
    return _dct_features_levels([img])


def _dct_features_levels(levels: List[torch.Tensor]) -> torch.Tensor:
    """(N, 6 * len(levels)): :func:`dct_features` of each level, the blocks of all levels in one pass."""
    blocks = [_dct_blocks(level).flatten(-2) for level in levels]
    stats = _block_statistics(torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0])
    counts = [b.shape[1] for b in blocks]
    per_level = [s.split(counts, dim=1) for s in stats]
    return torch.cat([_pool(*(s[i] for s in per_level)) for i in range(len(levels))], dim=1)


# ---------------------------------------------------------------------------------- (c) singular values
def _patch_triangle(img: torch.Tensor) -> torch.Tensor:
    """(N, 25, 25) R of the QR decomposition of the (patches x 25) matrix of distinct 5x5 patches (zero-padded at
    the right/bottom like ``im2col``): it has the same singular values, and a Householder QR keeps the small ones
    accurate (squaring the matrix into a Gram matrix would not: relative errors ~1e-9 on smooth images)."""
    n, h, w = img.shape
    x = F.pad(img, (0, -w % SVD_PATCH, 0, -h % SVD_PATCH))
    cols = x.unfold(1, SVD_PATCH, SVD_PATCH).unfold(2, SVD_PATCH, SVD_PATCH).reshape(n, -1, SVD_PATCH ** 2)
    r = torch.linalg.qr(cols, mode='r')[1]
    return F.pad(r, (0, 0, 0, SVD_PATCH ** 2 - r.shape[-2]))  # < 25 patches: zero rows (zero singular values)


def svd_features(img: torch.Tensor) -> torch.Tensor:
    """(N, 25) singular values (descending) of the (25 x patches) matrix of distinct 5x5 patches, zero-padded
    at the right/bottom like ``im2col(..., 'distinct')``."""
    return _svd_features_levels([img])


def _svd_features_levels(levels: List[torch.Tensor]) -> torch.Tensor:
    """(N, 25 * len(levels)): :func:`svd_features` of each level, one batched ``svdvals`` for all levels."""
    return torch.linalg.svdvals(torch.stack([_patch_triangle(level) for level in levels], dim=1)).flatten(1)


# ---------------------------------------------------------------------------- Gaussian pyramid (3 levels)
@lru_cache(maxsize=1)
def _gauss3_kernel() -> np.ndarray:
    """``fspecial('gaussian', 3)``: sigma 0.5, normalised."""
    taps = np.exp(-np.arange(-1, 2) ** 2 / (2 * 0.5 ** 2))
    kernel = np.outer(taps, taps)
    return kernel / kernel.sum()


def gauss_pyramid(img: torch.Tensor, levels: int = NUM_SCALES) -> List[torch.Tensor]:
    """[img, down1, down2]: ``imfilter(I, fspecial('gaussian', 3))`` (sigma 0.5, zero padding), then
    ``(2:2:end, 2:2:end)``."""
    k = _const(('gauss3',), _gauss3_kernel, img).view(1, 1, 3, 3)
    pyr = [img]
    for _ in range(levels - 1):
        pyr.append(F.conv2d(pyr[-1].unsqueeze(1), k, padding=1)[:, 0, 1::2, 1::2])
    return pyr


# ----------------------------------------------------------------- (b) steerable pyramid (matlabPyrTools)
def _point_op(values: torch.Tensor, lut: np.ndarray, origin: float, increment: float) -> torch.Tensor:
    """matlabPyrTools ``pointOp``: linear interpolation in a look-up table, index truncated toward zero and
    clamped to the table (the last segment extends past either end)."""
    table = torch.from_numpy(lut).to(values)
    pos = (values - origin) / increment
    idx = pos.trunc().clamp(0, len(lut) - 2).long()
    return table[idx] + (table[idx + 1] - table[idx]) * (pos - idx.to(values))


@lru_cache(maxsize=1)
def _radial_lut() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rcosFn(1, -0.5, [0 1])``: X (log2 radius) and the high-pass / low-pass transition tables."""
    size = 256
    x = np.pi * np.arange(-size - 1, 2) / (2 * size)
    y = np.cos(x) ** 2
    y[0], y[size + 2] = y[1], y[size + 1]
    x = -0.5 + (2 / np.pi) * (x + np.pi / 4)
    hi = np.sqrt(y)
    return x, hi, np.abs(np.sqrt(1.0 - hi ** 2))


@lru_cache(maxsize=2)
def _angle_lut(order: int) -> Tuple[np.ndarray, np.ndarray]:
    """``Xcosn``/``Ycosn`` of ``buildSFpyrLevs``: sqrt(const) cos(x)^order on [-2 pi, pi], 1024 steps per pi."""
    size = 1024
    x = np.pi * np.arange(-(2 * size + 1), size + 2) / size
    nbands = order + 1
    const = 2 ** (2 * order) * math.factorial(order) ** 2 / (nbands * math.factorial(2 * order))
    return x, math.sqrt(const) * np.cos(x) ** order


def _polar_grid(h: int, w: int, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """log2 radius and angle of the centred (fftshift) spectrum, as ``buildSFpyr`` builds them."""
    cy, cx = math.ceil((h + 0.5) / 2), math.ceil((w + 0.5) / 2)
    yr = (torch.arange(1, h + 1, dtype=like.dtype, device=like.device) - cy) / (h / 2)
    xr = (torch.arange(1, w + 1, dtype=like.dtype, device=like.device) - cx) / (w / 2)
    yy, xx = torch.meshgrid(yr, xr, indexing='ij')
    angle = torch.atan2(yy, xx)
    rad = torch.sqrt(xx ** 2 + yy ** 2)
    rad[cy - 1, cx - 1] = rad[cy - 1, cx - 2]
    return torch.log2(rad), angle


def _crop_centre(x: torch.Tensor) -> torch.Tensor:
    """The central ceil((dims - 0.5) / 2) frequencies of a centred spectrum: the next, half-size level."""
    out = []
    for dim in (-2, -1):
        n = x.shape[dim]
        ctr, lodims = math.ceil((n + 0.5) / 2), math.ceil((n - 0.5) / 2)
        start = ctr - math.ceil((lodims + 0.5) / 2)
        out.append(slice(start, start + lodims))
    return x[..., out[0], out[1]]


def _half_and_mirror(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Of a centred spectrum (..., h, w): the non-negative-frequency half (..., h, w // 2 + 1) of the unshifted
    spectrum X and the same half of k -> X(-k) (the entries an ``irfft2`` of the Hermitian part needs)."""
    h, w = x.shape[-2:]
    u = torch.fft.ifftshift(x, dim=(-2, -1))
    rows, cols = _cached(('mirror', h, w), x, lambda: (
        (-torch.arange(h, device=x.device)) % h, (-torch.arange(w // 2 + 1, device=x.device)) % w))
    return u[..., :w // 2 + 1], u.index_select(-2, rows).index_select(-1, cols)


def _real_part_of_ifft(lo: Tuple[torch.Tensor, torch.Tensor], masks: Tuple[torch.Tensor, torch.Tensor],
                       phase: complex, size: Tuple[int, int]) -> torch.Tensor:
    """``real(ifft2(ifftshift(phase * lo * mask)))`` for real masks, as one ``irfft2`` of the Hermitian part
    (X(k) + conj(X(-k))) / 2 on half of the spectrum; ``lo`` and ``masks`` are :func:`_half_and_mirror` pairs
    (``masks`` may carry a band dimension before the last two)."""
    (lo_half, lo_mirror), (mask_half, mask_mirror) = lo, masks
    if mask_half.ndim == 3:
        lo_half, lo_mirror = lo_half.unsqueeze(-3), lo_mirror.unsqueeze(-3)
    spec = lo_half * mask_half
    spec += lo_mirror.conj() * (mask_mirror * (phase.conjugate() / phase).real)  # conj(phase) / phase is +-1
    spec *= phase / 2
    return torch.fft.irfft2(spec, s=size)


def _pyramid_masks(h: int, w: int, scales: int, bands: int, like: torch.Tensor) -> dict:
    """The masks of ``buildSFpyr`` for an (h, w) image, cached: the high-pass / low-pass at the top, then per scale
    the oriented band masks (anglemask * himask, half + mirror) and the low-pass applied after the crop."""
    def make() -> dict:
        log_rad, angle = _polar_grid(h, w, like)
        xr, hi_lut, lo_lut = _radial_lut()
        step = float(xr[1] - xr[0])
        xa, ya = _angle_lut(bands - 1)
        out = {'hi0': _half_and_mirror(_point_op(log_rad, hi_lut, xr[0], step)),
               'lo0': _point_op(log_rad, lo_lut, xr[0], step), 'band': [], 'lo': []}
        for s in range(scales):
            origin = float(xr[0]) - (s + 1)  # Xrcos shifted by one octave per level
            himask = _point_op(log_rad, hi_lut, origin, step)
            anglemasks = torch.stack([_point_op(angle, ya, float(xa[0]) + math.pi * b / bands, float(xa[1] - xa[0]))
                                      for b in range(bands)])
            out['band'].append(_half_and_mirror(anglemasks * himask))
            log_rad, angle = _crop_centre(log_rad), _crop_centre(angle)
            out['lo'].append(_point_op(log_rad, lo_lut, origin, step))
        return out

    return _cached(('pyramid', h, w, scales, bands), like, make)


def _steerable_pyramid(img: torch.Tensor, scales: int = PYR_SCALES,
                       bands: int = PYR_BANDS) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """:func:`steerable_pyramid` with each scale's bands in one tensor (N, bands, h_s, w_s)."""
    h, w = img.shape[-2:]
    masks = _pyramid_masks(h, w, scales, bands, img)
    spectrum = torch.fft.fftshift(torch.fft.fft2(img), dim=(-2, -1))
    high = _real_part_of_ifft(_half_and_mirror(spectrum), masks['hi0'], 1 + 0j, (h, w))
    lo = spectrum * masks['lo0']
    phase = (-1j) ** (bands - 1)
    levels = []
    for s in range(scales):
        levels.append(_real_part_of_ifft(_half_and_mirror(lo), masks['band'][s], phase, tuple(lo.shape[-2:])))
        lo = _crop_centre(lo) * masks['lo'][s]
    return high, levels


def steerable_pyramid(img: torch.Tensor, scales: int = PYR_SCALES,
                      bands: int = PYR_BANDS) -> Tuple[torch.Tensor, List[List[torch.Tensor]]]:
    """matlabPyrTools ``buildSFpyr(img, scales, bands - 1)`` (twidth 1) of a batch (N, H, W).

    Returns the real high-pass residual (N, H, W) and ``scales`` lists of ``bands`` real oriented bands;
    scale s has the size of the centred spectrum cropped s times (ceil((n - 0.5) / 2) per step). As in the
    original, a coarser scale is not rescaled after the crop (its values are ~4x larger per step). Each band is
    ``real(ifft2(...))`` of the original, computed as the ``irfft2`` of the spectrum's Hermitian part.
    """
    high, levels = _steerable_pyramid(img, scales, bands)
    return high, [list(level.unbind(1)) for level in levels]


# ---------------------------------------------------------------- divisive normalisation and GSM stats
def _parents(levels: List[torch.Tensor]) -> List[Optional[torch.Tensor]]:
    """Per scale, the next coarser scale's bands ``imresize(., 2)``, cropped to this scale (N, bands, h, w)."""
    out: List[Optional[torch.Tensor]] = []
    for s in range(len(levels)):
        if s + 1 == len(levels):
            out.append(None)
            continue
        h, w = levels[s].shape[-2:]
        out.append(matlab_resize(levels[s + 1], scale=2)[..., :h, :w])
    return out


def _neighbourhoods(band: torch.Tensor, parent: Optional[torch.Tensor], others: List[torch.Tensor],
                    work: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N, K, pixels): at each interior pixel of ``band`` its 3x3 neighbourhood (row by row), the ``parent`` and
    the ``others`` at that pixel, written straight into one contiguous tensor (the start of ``work`` if given)."""
    n, h, w = band.shape
    rows = [band[:, dy:dy + h - 2, dx:dx + w - 2] for dy in range(3) for dx in range(3)]
    rows += [x[:, 1:h - 1, 1:w - 1] for x in ([parent] if parent is not None else []) + others]
    shape = (n, len(rows), h - 2, w - 2)
    vec = band.new_empty(shape) if work is None else work.view(-1)[:math.prod(shape)].view(shape)
    for k, row in enumerate(rows):
        vec[:, k].copy_(row)
    return vec.view(n, len(rows), -1)


def _normalise_band(band: torch.Tensor, parent: Optional[torch.Tensor], others: List[torch.Tensor],
                    guard: int, work: Optional[torch.Tensor] = None, triangular: Optional[bool] = None) -> torch.Tensor:
    """One band of ``norm_sender_normalized``: (centre - mean) / z without a ``guard``-pixel border, mean 0.

    z^2 = v^T pinv(C') v / K with C' the covariance C with its negative eigenvalues clipped (trace kept). The
    pseudo-inverse reuses C's eigen-decomposition Q diag(e') Q^T: pinv(C') = Q diag(1 / e'_kept) Q^T, kept where
    e' > max(m, n) eps max(e') (``pinv``'s tolerance), so z^2 = |diag(e'_kept^-1/2) Q^T v|^2 / K (on the CPU, when
    every eigenvalue is kept, |L^-1 v|^2 / K with the Cholesky factor L of C, which is the same number).
    ``work``: an optional float buffer of at least N * K * pixels elements for the neighbourhood vectors, reused
    from band to band (a fresh tensor of this size per band costs page faults on the CPU). ``triangular``: use the
    Cholesky route when the covariances allow it (default: on the CPU only, where the check costs no device sync).
    """
    n, h, w = band.shape
    vec = _neighbourhoods(band, parent, others, work)  # N, K, pixels
    k = vec.shape[1]
    centre = vec[:, 4].clone()
    cov = vec @ vec.transpose(1, 2) / vec.shape[2]
    ev, q = torch.linalg.eigh(cov)
    pos = ev.clamp_min(0)
    pos_sum = pos.sum(-1, keepdim=True)
    ev = pos * ev.sum(-1, keepdim=True) / (pos_sum + (pos_sum == 0).to(pos_sum))  # clip, keep the trace
    tol = k * torch.finfo(ev.dtype).eps * ev.amax(-1, keepdim=True)
    keep = ev > tol
    if triangular is None:
        triangular = vec.device.type == 'cpu'
    chol, info = torch.linalg.cholesky_ex(cov) if triangular else (None, None)
    if chol is not None and bool(keep.all()) and not bool(info.any()):
        # full rank (no eigenvalue clipped or dropped): pinv(C') = C^-1 and z^2 = |L^-1 v|^2 with C = L L^T, a
        # triangular solve at half the cost of the product below (checked on the host: CPU only, no device sync)
        u = torch.linalg.solve_triangular(chol, vec, upper=False)
    else:
        scale = torch.where(keep, ev, torch.ones_like(ev)).rsqrt() * keep
        u = (q * scale.unsqueeze(1)).transpose(1, 2) @ vec  # N, K, pixels
    z = torch.linalg.vector_norm(u, dim=1) / math.sqrt(9 + int(parent is not None))
    centre = centre - centre.mean(1, keepdim=True)
    g = torch.where(z > 0, centre / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(z))
    g = g.reshape(n, h - 2, w - 2)[:, guard:h - 2 - guard, guard:w - 2 - guard]
    return g - g.mean(dim=(1, 2), keepdim=True)


def _gsm_normalise(levels: List[torch.Tensor], parents: List[Optional[torch.Tensor]]) -> List[torch.Tensor]:
    """:func:`gsm_normalise` of per-scale band tensors (N, bands, h, w), parents from :func:`_parents`."""
    n, nbands, h, w = levels[0].shape
    nbands_total = len(levels) * nbands + 1  # MATLAB's Nband: oriented bands + high-pass
    work = levels[0].new_empty(n * (9 + nbands) * (h - 2) * (w - 2))  # the largest neighbourhood tensor
    out = []
    for s, level in enumerate(levels):
        bands = level.unbind(1)
        for b, band in enumerate(bands):
            has_parent = s * nbands + b + 2 < nbands_total - nbands
            parent = parents[s][:, b] if has_parent else None
            others = [bands[o] for o in range(nbands) if o != b]
            out.append(_normalise_band(band, parent, others, GUARDBAND // 2 ** s, work))
    return out


def gsm_normalise(levels: List[List[torch.Tensor]]) -> List[torch.Tensor]:
    """``norm_sender_normalized(pyr, pind, scales, bands, 1, 1, 3, 3, 50)``: each band divided by its
    Gaussian-scale-mixture multiplier; returns the normalised bands (N, h', w') scale by scale.

    At every interior pixel the vector v holds the 3x3 neighbourhood, the parent (next coarser band of the
    same orientation, ``imresize(., 2)``) where the band has one, and the same pixel in the other
    orientations; C = E[v v^T] with negative eigenvalues clipped (trace kept); z = sqrt(v^T pinv(C) v / K)
    with K = 9 + (1 if parent); the output is (centre - mean) / z without a guard band of 16 / 2^s pixels,
    mean-subtracted. As in the original, only bands with index < (#bands - 1) - bands have a parent (for 2
    scales: the first five orientations of scale 0).
    """
    stacked = [torch.stack(level, dim=1) for level in levels]
    return _gsm_normalise(stacked, _parents(stacked))


@lru_cache(maxsize=1)
def _ssim_taps() -> np.ndarray:
    taps = np.exp(-(np.arange(11) - 5) ** 2 / (2 * 1.5 ** 2))
    return taps / taps.sum()  # fspecial('gaussian', 11, 1.5) is the outer product of these


def _gauss_valid(x: torch.Tensor) -> torch.Tensor:
    """``filter2(fspecial('gaussian', 11, 1.5), x, 'valid')`` on (..., H, W), as two 1-D passes of in-place
    shifted sums (9x faster than ``conv2d`` on float64 CPU tensors)."""
    taps = [float(t) for t in _ssim_taps()]
    h, w = x.shape[-2:]
    y = x[..., 0:h - 10, :] * taps[0]
    for k in range(1, 11):
        y.add_(x[..., k:h - 10 + k, :], alpha=taps[k])
    z = y[..., 0:w - 10] * taps[0]
    for k in range(1, 11):
        z.add_(y[..., k:w - 10 + k], alpha=taps[k])
    return z


def _local_moments(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-window mean and variance maps (valid region) of (..., H, W)."""
    m = _gauss_valid(torch.stack([x, x * x]))
    return m[0], m[1].sub_(m[0] ** 2)


def _mean_cs(cov: torch.Tensor, var_a: torch.Tensor, var_b: torch.Tensor, c2: float) -> torch.Tensor:
    """mean((2 cov + C2) / (var_a + var_b + C2)) over the last two dims (``cov`` is overwritten)."""
    return cov.mul_(2).add_(c2).div_(var_a + var_b + c2).mean(dim=(-2, -1))


def _band_chunk(x: torch.Tensor) -> int:
    """Bands per pass of the contrast-structure maps: one on the CPU (a band's maps stay in the cache: ~2x faster
    than the whole stack), all of them elsewhere."""
    return 1 if x.device.type == 'cpu' else x.shape[1]


def contrast_structure(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Mean contrast-structure term of SSIM, mean((2 s_ab + C2) / (s_a^2 + s_b^2 + C2)), C2 = (0.03 L)^2:
    the third output ``mcs`` of ``ssim_index_new.m`` (11x11 Gaussian window, sigma 1.5, valid region).

    ``a`` (N, K, H, W) or (N, H, W); ``b`` broadcastable to it (its moments are computed once).
    """
    squeeze = a.ndim == 3
    if squeeze:
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    mean_b, var_b = _local_moments(b)
    c2 = (0.03 * data_range) ** 2
    out = []
    step = _band_chunk(a)
    for i in range(0, a.shape[1], step):
        part, other = a[:, i:i + step], b[:, i:i + step] if b.shape[1] > 1 else b
        mb, vb = (mean_b, var_b) if b.shape[1] == 1 else (mean_b[:, i:i + step], var_b[:, i:i + step])
        mean_a, var_a = _local_moments(part)
        cov = _gauss_valid(part * other).sub_(mean_a * mb)
        out.append(_mean_cs(cov, var_a, vb, c2))
    cs = torch.cat(out, dim=1)
    return cs[:, 0] if squeeze else cs


def pairwise_contrast_structure(x: torch.Tensor, pairs: List[Tuple[int, int]],
                                data_range: float = 255.0) -> torch.Tensor:
    """``contrast_structure(x[:, i], x[:, j])`` for every pair (i, j) of the bands in (N, K, H, W): (N, P);
    each band's mean and variance maps are computed once."""
    step = _band_chunk(x)
    moments = [_local_moments(x[:, i:i + step]) for i in range(0, x.shape[1], step)]
    mean, var = torch.cat([m for m, _ in moments], dim=1), torch.cat([v for _, v in moments], dim=1)
    c2 = (0.03 * data_range) ** 2
    out = []
    for k in range(0, len(pairs), step):
        first, second = [i for i, _ in pairs[k:k + step]], [j for _, j in pairs[k:k + step]]
        cov = _gauss_valid(x[:, first] * x[:, second]).sub_(mean[:, first] * mean[:, second])
        out.append(_mean_cs(cov, var[:, first], var[:, second], c2))
    return torch.cat(out, dim=1)


def gsm_features(img: torch.Tensor) -> torch.Tensor:
    """(N, 45) ``global_gsm`` features of (N, H, W) Y in [0, 255]: GGD shape of the 12 normalised bands,
    of each orientation's two scales together (6), contrast-structure of each (raw, resized) band with the
    high-pass residual (12) and between the normalised bands of scale 0, pairs i < j (15)."""
    n = img.shape[0]
    high, levels = _steerable_pyramid(img)
    parents = _parents(levels)
    sub = _gsm_normalise(levels, parents)
    feats = [ggd_shape(s.reshape(n, -1)) for s in sub]
    for b in range(PYR_BANDS):
        feats.append(ggd_shape(torch.cat([sub[b].reshape(n, -1), sub[b + PYR_BANDS].reshape(n, -1)], dim=1)))
    size = tuple(high.shape[-2:])
    h1, w1 = levels[1].shape[-2:]
    # imresize(band, size) of the coarser bands; with size = 2 x their size it is the parent already computed
    coarse = parents[0] if size == (2 * h1, 2 * w1) else matlab_resize(levels[1], size)
    feats += list(contrast_structure(torch.cat([levels[0], coarse], dim=1), high.unsqueeze(1)).unbind(1))
    pairs = [(i, j) for i in range(PYR_BANDS) for j in range(i + 1, PYR_BANDS)]
    feats += list(pairwise_contrast_structure(torch.stack(sub[:PYR_BANDS], dim=1), pairs).unbind(1))
    return torch.stack(feats, dim=1)


# ------------------------------------------------------------------------------------------ public API
def _features(y: torch.Tensor) -> torch.Tensor:
    """(N, 138) features of a batch (N, H, W) in [0, 255]: dct, gsm, svd."""
    pyr = gauss_pyramid(y / _cached(('255',), y, lambda: exact_scalar(255.0, y)))  # a true division on CUDA too
    return torch.cat([_dct_features_levels(pyr), gsm_features(y), _svd_features_levels(pyr)], dim=1)


def default_chunk(shape: Tuple[int, ...], device: torch.device) -> int:
    """Images per pass of :func:`ma_features_batch`: one on the CPU (one image's tensors already fill the caches;
    larger chunks are slower per image), on an accelerator as many as fit ~4 M pixels (~1 GB of float64
    temporaries per M pixels)."""
    if device.type == 'cpu':
        return 1
    return max(1, (1 << 22) // (shape[-2] * shape[-1]))


def ma_features_batch(y: Images, device: Optional[Union[str, torch.device]] = None,
                      chunk: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Features of a batch of Y images (N, H, W) in [0, 255]: {'dct': (N, 18), 'gsm': (N, 45), 'svd': (N, 75)}.

    The images go through in chunks of ``chunk`` (default :func:`default_chunk`: one at a time on the CPU, a
    whole batch at once on CUDA); every step is batched over the images of a chunk, and an image's features do
    not depend on its chunk (to round-off).
    """
    t = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(y))
    t = t.to(device=device if device is not None else t.device, dtype=torch.float64)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if min(t.shape[-2:]) < MIN_SIZE:
        raise ValueError(f"Ma's metric: image too small ({tuple(t.shape[-2:])}, after any border crop); "
                         f'needs >= {MIN_SIZE}x{MIN_SIZE}')
    step = chunk or default_chunk(tuple(t.shape), t.device)
    with torch.inference_mode():
        feats = torch.cat([_features(t[i:i + step]) for i in range(0, t.shape[0], step)]).cpu().numpy()
    bounds = np.cumsum([0] + [FEATURE_SIZES[g] for g in GROUPS])
    return {g: feats[:, bounds[i]:bounds[i + 1]] for i, g in enumerate(GROUPS)}


def ma_features(y: Images) -> Dict[str, np.ndarray]:
    """Features of one Y image (H, W) in [0, 255]: {'dct': (18,), 'gsm': (45,), 'svd': (75,)}."""
    feats = ma_features_batch(np.asarray(y)[None] if isinstance(y, np.ndarray) else y.unsqueeze(0))
    return {k: v[0] for k, v in feats.items()}
