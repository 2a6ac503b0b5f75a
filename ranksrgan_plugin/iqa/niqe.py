"""Batched NIQE in torch that reproduces ``basicsr.metrics.niqe.calculate_niqe`` (basicsr 1.4.2).

NIQE (Mittal et al., "Making a 'Completely Blind' Image Quality Analyzer") in the paper's steps, top
to bottom: local normalisation of the luma (MSCN coefficients), 18 AGGD/GGD parameters of every 96x96
block and of its neighbour products at two scales, a multivariate Gaussian fitted to the 36 block
features of the image, and its distance to the Gaussian of pristine images.

BasicSR computes it one image and one block at a time in NumPy; this module computes the same
function on a batch of equal-size images at once, on CPU or CUDA. BasicSR's score hinges on
discrete choices (pixel rounding, an argmin over a grid of AGGD shapes) that flip on last-bit
differences, and NIQE's normalisation amplifies last-bit differences of its float32 intermediates,
so every float32 intermediate is reproduced bit for bit: float64 accumulation where SciPy
accumulates in float64, NumPy 1.x's summation order for the block means
(:mod:`~ranksrgan_plugin.iqa.numpy1_sums`) and the same BLAS calls for the resize
(:mod:`~ranksrgan_plugin.iqa.blas_imresize`); the two one-sided block means are bounded instead and
computed exactly only when the bound leaves the grid choice open. See ``docs/niqe.md``.
"""
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from scipy.special import gamma as gamma_fn

from .blas_imresize import imresize_half
from .image_prep import ImageBatch, as_batch, batch_layout, gray_basicsr, shave, to_planes, y_basicsr
from .numpy1_sums import exact_one_sided_means, mean32, numpy_sum32, sqrt32
from .scratch import Scratch

__all__ = ['niqe_batch', 'niqe_score', 'niqe_block_count', 'BLOCK_SIZE', 'MIN_BLOCKS']

BLOCK_SIZE = 96  # the official (and BasicSR's) block size, no overlap
# NIQE fits a Gaussian to the blocks' features: with one block the covariance is that of a single sample
# (BasicSR's np.cov gives NaN, turned into zeros), so the score is a number without a meaning
MIN_BLOCKS = 2
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and both diagonal neighbour products
_CONVERSIONS = ('y', 'gray')
_F32_UNIT = 2.0**-24  # unit roundoff of float32
# Bound on |rhatnorm(ours) / rhatnorm(NumPy) - 1| when only the one-sided means may differ (see _aggd_moments).
_RHATNORM_REL_TOL = 24 * _F32_UNIT
_CPU_PIXELS_PER_THREAD = 1 << 17  # CPU: pixels per step of a thread (one 296x296 image), to keep the work in cache
_CPU_AGGD_ELEMENTS = 1 << 17  # CPU: field values per pass of the AGGD sums (in cache)
_CPU_TASK_IMAGES = 16  # CPU worker threads: images per task where there are enough (see _cpu_tasks)


# ----------------------------------------------------------------------------------------- constants
@functools.cache
def _host_tables() -> Dict[str, np.ndarray]:
    """NIQE constants in float64 NumPy: the pristine model, the smoothing window and the AGGD grid tables.

    The grid and the gamma-function tables are evaluated with the same NumPy/SciPy calls as BasicSR,
    so every table entry is bit-identical to the scalar BasicSR computes for the chosen shape.
    """
    import basicsr.metrics.niqe as basicsr_niqe

    params = np.load(os.path.join(os.path.dirname(os.path.abspath(basicsr_niqe.__file__)), 'niqe_pris_params.npz'))
    gam = np.arange(0.2, 10.001, 0.001)
    inv = np.reciprocal(gam)
    r_gam = np.square(gamma_fn(inv * 2)) / (gamma_fn(inv) * gamma_fn(inv * 3))
    if not np.all(np.diff(r_gam) > 0):  # the bracketing search in _aggd_shape_index relies on it
        raise RuntimeError('NIQE: the AGGD ratio table r(gamma) is not strictly increasing')
    return {
        'mu_pris': params['mu_pris_param'].reshape(-1),
        'cov_pris': params['cov_pris_param'],
        'window': params['gaussian_window'],
        'gam': gam,
        'r_gam': r_gam,
        'beta_factor': np.sqrt(gamma_fn(1 / gam) / gamma_fn(3 / gam)),
        'mean_factor': gamma_fn(2 / gam) / gamma_fn(1 / gam),
    }


@functools.cache
def _gauss_taps() -> Tuple[float, ...]:
    """1-D taps of BasicSR's 7x7 smoothing window, which is symmetric and rank 1 (to 1e-16): w = outer(g, g)."""
    window = _host_tables()['window']
    u, s, _ = np.linalg.svd(window)
    taps = np.abs(u[:, 0]) * np.sqrt(s[0])
    if not np.allclose(np.outer(taps, taps), window, rtol=0, atol=1e-15) or not np.allclose(taps, taps[::-1]):
        raise RuntimeError('NIQE: the smoothing window is not a symmetric outer product')
    return tuple(float(t) for t in taps)


@functools.cache
def _device_tables(device: torch.device) -> Dict[str, torch.Tensor]:
    """The constants of :func:`_host_tables` as float64 tensors on ``device`` (cached per device)."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in _host_tables().items()}


# ------------------------------------------------- 1. local normalisation: MSCN coefficients (Eq. 1)
def _smooth(x: torch.Tensor, scratch: Scratch) -> torch.Tensor:
    """``scipy.ndimage.convolve(x, gaussian_window, mode='nearest')`` of each (H, W) plane of float32 ``x``.

    SciPy accumulates in float64 and stores float32, and NIQE's normalisation amplifies any last-bit
    difference of the result, so this also accumulates in float64 (two separable passes, replicate
    padding) and rounds once to float32. Returns a scratch view.
    """
    taps = _gauss_taps()
    r = len(taps) // 2
    *lead, h, w = x.shape
    padded = scratch.get('smooth_pad', (*lead, h + 2 * r, w + 2 * r), torch.float64)
    padded[..., r:r + h, r:r + w] = x
    padded[..., :r, r:r + w] = x[..., :1, :]
    padded[..., r + h:, r:r + w] = x[..., -1:, :]
    padded[..., :r] = padded[..., r:r + 1]
    padded[..., r + w:] = padded[..., r + w - 1:r + w]
    rows = torch.mul(padded[..., 0:h, :], taps[0], out=scratch.get('smooth_rows', (*lead, h, w + 2 * r), torch.float64))
    for k in range(1, len(taps)):
        rows.add_(padded[..., k:k + h, :], alpha=taps[k])
    out = torch.mul(rows[..., 0:w], taps[0], out=scratch.get('smooth_out', (*lead, h, w), torch.float64))
    for k in range(1, len(taps)):
        out.add_(rows[..., k:k + w], alpha=taps[k])
    return scratch.get('smooth_out32', tuple(x.shape)).copy_(out)


def _mscn(img: torch.Tensor, scratch: Scratch, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients (Eq. 1 of the paper) of (N, H, W), float32 like BasicSR."""
    both = scratch.get('mscn_in', (img.shape[0], 2) + tuple(img.shape[1:]))
    both[:, 0] = img
    torch.mul(img, img, out=both[:, 1])
    smoothed = _smooth(both, scratch)
    mu, var = smoothed[:, 0], smoothed[:, 1]
    var -= torch.mul(mu, mu, out=scratch.get('mscn_mu2', tuple(mu.shape)))
    sigma = sqrt32(var.abs_(), out=var)
    sigma += 1
    out = torch.sub(img, mu, out=out)
    out /= sigma
    return out


# -------------------------------------------- 2. block features: AGGD / GGD fits (Eq. 2-8), two scales
def _roll_pieces(size: int, shift: int) -> List[Tuple[slice, slice]]:
    """(destination, source) slices with ``dest[i] = src[(i - shift) % size]``, i.e. ``np.roll`` by ``shift``."""
    if shift == 0:
        return [(slice(0, size), slice(0, size))]
    if shift > 0:
        return [(slice(shift, size), slice(0, size - shift)), (slice(0, shift), slice(size - shift, size))]
    return [(slice(0, size + shift), slice(-shift, size)), (slice(size + shift, size), slice(0, -shift))]


def _neighbour_fields(img: torch.Tensor, block: int, scratch: Scratch) -> torch.Tensor:
    """Blocks of the MSCN image (N, bh * block, bw * block) and their 4 neighbour products: (N * bh * bw * 5, block**2).

    Rows are block-major (row-major block order, like the features of both scales must share) and
    hold each block flattened row by row, like ``block.flatten()``. The neighbour is
    ``np.roll(block, shift)``, as in BasicSR: the products wrap around the block edges.
    """
    n, h, w = img.shape
    bh, bw = h // block, w // block
    out = scratch.get('fields', (n * bh * bw, 1 + len(_SHIFTS), block, block))
    blocks = out[:, 0]
    blocks.view(n, bh, bw, block, block).copy_(img.view(n, bh, block, bw, block).permute(0, 1, 3, 2, 4))
    for i, (dy, dx) in enumerate(_SHIFTS, 1):
        for dst_r, src_r in _roll_pieces(block, dy):
            for dst_c, src_c in _roll_pieces(block, dx):
                torch.mul(blocks[:, dst_r, dst_c], blocks[:, src_r, src_c], out=out[:, i, dst_r, dst_c])
    return out.view(-1, block * block)


def _field_rows(img: torch.Tensor, block: int, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of ``_neighbour_fields(img, block)`` without building the others: (len(rows), block**2)."""
    n, h, w = img.shape
    bh, bw = h // block, w // block
    kinds = 1 + len(_SHIFTS)
    kind, index = rows % kinds, rows // kinds
    blocks = img.view(n, bh, block, bw, block)[index // (bh * bw), index // bw % bh, :, index % bw, :]
    out = blocks.clone()
    for i, shift in enumerate(_SHIFTS, 1):
        sel = kind == i
        out[sel] = blocks[sel] * torch.roll(blocks[sel], shift, dims=(1, 2))  # np.roll: out[i] = in[i - shift]
    return out.view(-1, block * block)


def _aggd_shape_index(rhatnorm: torch.Tensor, tables: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Index of ``np.argmin((r_gam - rhatnorm) ** 2)`` without building the (..., 9801) difference array.

    r_gam is strictly increasing, so the minimiser is one of the two grid points around the
    insertion position; ties go to the lower index, like argmin. Non-finite inputs make every
    difference NaN or inf in BasicSR, and argmin then returns 0.
    """
    r_gam = tables['r_gam']
    last = r_gam.numel() - 1
    finite = torch.isfinite(rhatnorm)
    x = torch.where(finite, rhatnorm, torch.zeros_like(rhatnorm))
    hi = torch.searchsorted(r_gam, x.contiguous()).clamp(max=last)
    lo = (hi - 1).clamp(min=0)
    pick_lo = (r_gam[lo] - x) ** 2 <= (r_gam[hi] - x) ** 2
    return torch.where(finite, torch.where(pick_lo, lo, hi), torch.zeros_like(hi))


def _rhatnorm(mean_neg: torch.Tensor, mean_pos: torch.Tensor, rhat: torch.Tensor) -> torch.Tensor:
    """BasicSR's normalised moment ratio; float32 square roots and ratio, the rest float64 as in NumPy 1.x."""
    g = (sqrt32(mean_neg) / sqrt32(mean_pos)).double()
    return (rhat * (g * g * g + 1) * (g + 1)) / ((g * g + 1) * (g * g + 1))


@functools.cache
def _byte_lane_chunk(words: int) -> int:
    """The largest divisor of ``words`` up to 255: that many 0/1 bytes add up without leaving their byte."""
    return max(d for d in range(1, 256) if words % d == 0)


def _sign_counts(x: torch.Tensor) -> torch.Tensor:
    """Numbers of negative and of positive elements of every row of float32 ``x`` (R, n): (2, R) float64.

    On the CPU the comparisons' bytes are added eight at a time as uint64 words (exact: each byte
    lane adds up at most 255 ones; torch's sum of booleans is several times slower there).
    """
    rows, n = x.shape
    if x.device.type != 'cpu' or n % 8 or not x.is_contiguous():
        return torch.stack([(x < 0).sum(1), (x > 0).sum(1)]).double()
    xn = x.numpy()
    signs = np.empty((2, rows, n), dtype=bool)
    np.less(xn, 0, out=signs[0])
    np.greater(xn, 0, out=signs[1])
    words = n // 8
    chunk = _byte_lane_chunk(words)
    lanes = np.add.reduce(signs.view(np.uint64).reshape(2, rows, words // chunk, chunk), axis=-1)
    return torch.from_numpy(np.add.reduce(lanes.view(np.uint8), axis=-1, dtype=np.float64))


def _aggd_sums(fields: torch.Tensor, scratch: Scratch) -> Tuple[torch.Tensor, torch.Tensor]:
    """The float32 sums and the sign counts behind the AGGD moments of every row of ``fields`` (R, n) float32.

    Returns (4, R) float32 sums of ``x**2`` over ``x < 0`` and over ``x > 0`` (zero-filled rows),
    of ``|x|`` and of ``x**2``, all in NumPy's order (:func:`numpy_sum32`), and (2, R) float64 counts
    of the negative and the positive elements. See :func:`_aggd_moments`.
    """
    rows, n = fields.shape
    # On the CPU a few hundred kilo-elements at a time, so that the four parts stay in cache.
    chunk = rows if fields.device.type != 'cpu' else max(1, _CPU_AGGD_ELEMENTS // n)
    sums, counts = [], []
    for i in range(0, rows, chunk):
        x = fields[i:i + chunk]
        parts = scratch.get('aggd_parts', (4, x.shape[0], n))
        counts.append(_sign_counts(x))
        # x where x < 0 else 0, squared: NumPy's x[x < 0]**2 with zeros in place of the other elements.
        neg = torch.clamp(x, max=0, out=parts[0])
        neg.mul_(neg)
        sq = torch.mul(x, x, out=parts[3])
        torch.sub(sq, neg, out=parts[1])  # x**2 where x > 0, else 0: x * x - x * x is exactly 0
        torch.abs(x, out=parts[2])
        sums.append(numpy_sum32(parts))
    return torch.cat(sums, 1), torch.cat(counts, 1)


def _aggd_moments(sums: torch.Tensor, counts: torch.Tensor, n: int,
                  tables: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The sample moments of BasicSR's AGGD fit of rows of n float32 values, from their :func:`_aggd_sums`.

    Returns (R, 3) float64 ``[mean(x[x < 0]**2), mean(x[x > 0]**2), rhat]`` and an (R,) mask of the
    rows whose one-sided means must be recomputed exactly (:func:`exact_one_sided_means`).

    In ``basicsr.metrics.niqe.estimate_aggd_param`` the four sample means are float32 NumPy means
    (pairwise sums), and the chosen shape (an argmin over a 0.001 grid) flips when they change in the
    last bit. ``mean(|x|)`` and ``mean(x**2)`` are reproduced bit for bit (:func:`numpy_sum32`), so
    rhat is exact. The one-sided means sum a data-dependent selection; here they are the same kind of
    float32 sum over the zero-filled row. Summing non-negative terms, each sum is within h float32
    roundoffs u of the exact one, h being the height of its summation tree (25 here, at most 32 in
    NumPy's), so the two means differ by at most 59u, their ratio g by 65u, and rhatnorm = rhat * F(g)
    by 0.151 * 65u ~ 10u (0.151 = max |d log F / d log g|), below ``_RHATNORM_REL_TOL``. Only rows
    whose grid choice could change within that tolerance (about 1 %) need the exact means; for the
    others the betas may differ from BasicSR's in the last float32 bit (< 1e-5 in the score).
    """
    sum_neg, sum_pos, sum_abs, sum_sq = sums
    count_neg, count_pos = counts
    moments = torch.stack([mean32(sum_neg, count_neg), mean32(sum_pos, count_pos),
                           mean32(sum_abs, n) ** 2 / mean32(sum_sq, n)], dim=1)
    rhatnorm = _rhatnorm(*moments.unbind(1))
    unsure = _aggd_shape_index(rhatnorm * (1 - _RHATNORM_REL_TOL), tables) != \
        _aggd_shape_index(rhatnorm * (1 + _RHATNORM_REL_TOL), tables)
    return moments, unsure


def _aggd_params(moments: torch.Tensor, tables: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """alpha, beta_l, beta_r (float64) and the grid index of BasicSR's AGGD fit, from (..., 3) moments."""
    mean_neg, mean_pos, rhat = moments.unbind(-1)
    idx = _aggd_shape_index(_rhatnorm(mean_neg, mean_pos, rhat), tables)
    factor = tables['beta_factor'][idx]
    return tables['gam'][idx], sqrt32(mean_neg).double() * factor, sqrt32(mean_pos).double() * factor, idx


def _scale_features(img: torch.Tensor, block: int, step: int, tables: Dict[str, torch.Tensor],
                    scratch: Scratch) -> torch.Tensor:
    """The 18 NIQE features of every block of one scale: (N, num_blocks, 18) float64.

    The block sums are taken ``step`` images at a time; the moments follow for all blocks at once, and
    the few rows that need exact one-sided means are rebuilt from the kept MSCN image and done in one go.
    """
    mscn = scratch.get('mscn', tuple(img.shape))
    sums, counts = [], []
    for i in range(0, img.shape[0], step):
        part_sums, part_counts = _aggd_sums(_neighbour_fields(_mscn(img[i:i + step], scratch, mscn[i:i + step]),
                                                              block, scratch), scratch)
        sums.append(part_sums)
        counts.append(part_counts)
    moments, unsure = _aggd_moments(torch.cat(sums, 1), torch.cat(counts, 1), block * block, tables)
    if bool(unsure.any()):
        rows = unsure.nonzero().squeeze(1)
        moments[rows, :2] = torch.stack(exact_one_sided_means(_field_rows(mscn, block, rows)), dim=1)
    alpha, beta_l, beta_r, idx = (t.view(img.shape[0], -1, 1 + len(_SHIFTS)) for t in _aggd_params(moments, tables))
    mean = (beta_r - beta_l) * tables['mean_factor'][idx]
    feats = [alpha[..., 0], (beta_l[..., 0] + beta_r[..., 0]) / 2]
    for k in range(1, 1 + len(_SHIFTS)):
        feats += [alpha[..., k], mean[..., k], beta_l[..., k], beta_r[..., k]]
    return torch.stack(feats, dim=-1)


# -------------------------------------- 3. MVG fit of the image and distance to the pristine model (Eq. 10)
def _nancov(feats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``np.cov(feats[valid], rowvar=False)`` per image, (N, 36, 36) float64.

    NumPy quirk kept on purpose: with exactly one valid row ``np.cov`` treats the row as one variable
    with 36 observations and returns a scalar (its variance), which BasicSR then adds to every entry.
    No valid row gives NaN.
    """
    nv = valid.sum(-1).to(feats.dtype)
    x = torch.where(valid.unsqueeze(-1), feats, torch.zeros_like(feats))
    centred = torch.where(valid.unsqueeze(-1), x - x.sum(1, keepdim=True) / nv.view(-1, 1, 1), torch.zeros_like(x))
    cov = centred.transpose(1, 2) @ centred / (nv - 1).view(-1, 1, 1)
    one = x.sum(1)  # the single valid row, where nv == 1
    one_var = ((one - one.mean(-1, keepdim=True)) ** 2).sum(-1) / (one.shape[-1] - 1)
    cov = torch.where((nv == 1).view(-1, 1, 1), one_var.view(-1, 1, 1).expand_as(cov), cov)
    return torch.where((nv == 0).view(-1, 1, 1), torch.full_like(cov, float('nan')), cov)


def _mvg_distance(feats: torch.Tensor, tables: Dict[str, torch.Tensor]) -> torch.Tensor:
    """NIQE quality (Eq. 10) of each image from its block features (N, num_blocks, 36): (N,) float64."""
    nan = torch.isnan(feats)
    mu = torch.where(nan, torch.zeros_like(feats), feats).sum(1) / (~nan).sum(1)  # np.nanmean
    cov = (tables['cov_pris'] + _nancov(feats, ~nan.any(-1))) / 2
    ok = torch.isfinite(cov).flatten(1).all(-1)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    # np.linalg.pinv's rcond; the matrix is symmetric, so its eigendecomposition gives the same pseudo-inverse.
    inv = torch.linalg.pinv(torch.where(ok.view(-1, 1, 1), cov, eye), rtol=1e-15, hermitian=True)
    diff = (tables['mu_pris'] - mu).unsqueeze(1)
    quality = torch.sqrt((diff @ inv @ diff.transpose(1, 2)).view(-1))
    return torch.where(ok, quality, torch.full_like(quality, float('nan')))


def _niqe_gray(img: torch.Tensor, step: int, scratch: Scratch) -> torch.Tensor:
    """NIQE of a float32 (N, H, W) batch of rounded gray/Y images in [0, 255], ``step`` images at a time."""
    tables = _device_tables(img.device)
    n, h, w = img.shape
    img = img[:, :h // BLOCK_SIZE * BLOCK_SIZE, :w // BLOCK_SIZE * BLOCK_SIZE]
    img2 = imresize_half(img, scratch)
    feats = [_scale_features(img, BLOCK_SIZE, step, tables, scratch),
             _scale_features(img2, BLOCK_SIZE // 2, step, tables, scratch)]
    return _mvg_distance(torch.cat(feats, dim=-1), tables)


# ------------------------------------------------------------------------------------ batched API
def niqe_block_count(height: int, width: int, crop_border: int) -> int:
    """How many full NIQE blocks an image of ``height`` x ``width`` keeps after the ``crop_border`` shave."""
    return max(height - 2 * crop_border, 0) // BLOCK_SIZE * (max(width - 2 * crop_border, 0) // BLOCK_SIZE)


def _check_size(h: int, w: int, crop_border: int) -> None:
    """Raise a ValueError when no full 96x96 block is left after cropping (BasicSR fails inside imresize)."""
    if crop_border < 0:
        raise ValueError(f'niqe_batch: crop_border must be >= 0, got {crop_border}')
    ch, cw = h - 2 * crop_border, w - 2 * crop_border
    if ch < BLOCK_SIZE or cw < BLOCK_SIZE:
        raise ValueError(f'niqe_batch: image too small for NIQE: {h}x{w} with crop_border={crop_border} leaves '
                         f'{max(ch, 0)}x{max(cw, 0)} pixels, but NIQE needs at least one {BLOCK_SIZE}x{BLOCK_SIZE} '
                         f'block')


def _prepare(chunk: torch.Tensor, input_order: str, convert_to: str, crop_border: int,
             channel_dim: Optional[int], out: torch.Tensor, scratch: Scratch) -> None:
    """Raw images -> rounded float32 luma in ``out`` (N, H', W'), converted and cropped like BasicSR."""
    planes = to_planes(chunk, channel_dim)
    if input_order == 'HW' or convert_to == 'y':  # per-pixel conversions: crop first, it is cheaper
        planes = shave(planes, crop_border)
        planes = scratch.get('planes', tuple(planes.shape)).copy_(planes)  # BasicSR: img.astype(np.float32)
        if input_order == 'HW':
            luma = planes[:, 0]
        else:
            luma = y_basicsr(planes, scratch.get('y_planes', tuple(planes.shape), torch.float64), out)
    else:  # OpenCV's gray, on the uncropped image like BasicSR
        luma = shave(gray_basicsr(planes.float()), crop_border)
    torch.round(luma, out=out)  # round-half-to-even in both NumPy and torch


def _cpu_step(pixels: int) -> int:
    """Images per step of a CPU thread: about 128 k pixels, so that two workers' buffers stay in cache together."""
    return max(1, _CPU_PIXELS_PER_THREAD // pixels)


def _cpu_tasks(count: int, batch_size: int, workers: int) -> List[Tuple[int, int]]:
    """(start, stop) image ranges for ``workers`` single-threaded CPU workers.

    About 8 tasks per worker, so that the workers finish together even when one is slowed down by
    other processes, of at least ``_CPU_TASK_IMAGES`` images where there are enough (the resize makes the same
    number of BLAS calls whatever the number of images), never more than ``batch_size``.
    """
    size = min(batch_size, max(-(-count // (8 * workers)), min(_CPU_TASK_IMAGES, -(-count // workers))))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _run_cpu_tasks(score: Callable[[int, int, int, Scratch], torch.Tensor], tasks: List[Tuple[int, int]],
                   pixels: int, workers: int) -> List[torch.Tensor]:
    """``score(start, stop, step, scratch)`` of every task, by ``workers`` threads with one torch thread each.

    torch and NumPy release the GIL in their kernels, so threads that each work through whole images
    keep the cores busy without the per-operation synchronisation of torch's intra-op threads (which
    stalls badly when other processes compete for the cores: one image took 200-400 ms instead of 6 ms
    with two intra-op threads on a busy 2-core box), so one task also gets one worker, never intra-op
    threads. ``torch.set_num_threads(1)`` in a worker also lowers the process-wide default while the
    workers run; it is restored on return.
    """
    threads = torch.get_num_threads()
    local = threading.local()

    def run(task: Tuple[int, int]) -> torch.Tensor:
        if not hasattr(local, 'scratch'):
            torch.set_num_threads(1)
            local.scratch = Scratch(torch.device('cpu'))
        with torch.inference_mode():
            return score(task[0], task[1], _cpu_step(pixels), local.scratch)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix='niqe') as pool:
            return list(pool.map(run, tasks))
    finally:
        torch.set_num_threads(threads)


def _checked_batch(imgs: ImageBatch, crop_border: int, input_order: str, convert_to: str,
                   batch_size: int) -> Tuple[torch.Tensor, Tuple[int, int, Optional[int]]]:
    """The images as one tensor and their (height, width, channel dim), or a ValueError on bad arguments."""
    if convert_to not in _CONVERSIONS:
        raise ValueError(f'niqe_batch: convert_to must be one of {_CONVERSIONS}, got {convert_to!r}')
    if batch_size < 1:
        raise ValueError(f'niqe_batch: batch_size must be >= 1, got {batch_size}')
    batch = as_batch(imgs)
    layout = batch_layout(tuple(batch.shape), input_order)
    _check_size(layout[0], layout[1], crop_border)
    if batch.dtype == torch.bool or batch.is_complex():
        raise ValueError(f'niqe_batch: expected real-valued images, got {batch.dtype}')
    return batch, layout


def niqe_batch(imgs: ImageBatch,
               crop_border: int = 0,
               input_order: str = 'HWC',
               convert_to: str = 'y',
               device: Optional[Union[str, torch.device]] = None,
               batch_size: int = 64) -> np.ndarray:
    """NIQE of every image of a batch, equal to ``basicsr.metrics.calculate_niqe`` image by image.

    Args:
        imgs: N equal-size images in [0, 255] (uint8 or float, BGR like cv2/BasicSR): a numpy array or
            torch tensor shaped (N, H, W, 3) for 'HWC', (N, 3, H, W) for 'CHW', or (N, H, W) for
            single-channel images; or a sequence of such images with equal shapes.
        crop_border: pixels cropped from each edge before the metric (after the colour conversion).
        input_order: 'HWC', 'CHW', or 'HW'. (N, H, W) input with 'HW' is used as is; with 'HWC' or
            'CHW' it is treated like BasicSR treats a 2-D image (``x / 255 * 255`` in float32).
        convert_to: 'y' (MATLAB/BT.601 Y of YCbCr) or 'gray' (OpenCV BGR2GRAY).
        device: where to compute; default the input tensor's device (CPU for numpy input).
        batch_size: images per chunk (bounds memory: on CUDA about 20 MB per 296x296 image; the CPU
            works through a chunk a few images at a time: about 2 MB per image plus ~70 MB).

    Returns:
        float64 array of shape (N,). NaN where BasicSR would fail on a degenerate image (e.g. no block
        with finite statistics), instead of raising.

    Raises:
        ValueError: unknown input_order/convert_to, bad shape, unequal shapes in a sequence, or an image
            with fewer than one 96x96 block after cropping.
    """
    batch, (h, w, channel_dim) = _checked_batch(imgs, crop_border, input_order, convert_to, batch_size)
    target = torch.device(device) if device is not None else batch.device

    def score(start: int, stop: int, step: int, scratch: Scratch) -> torch.Tensor:
        """Scores of images [start, stop), ``step`` images at a time."""
        chunk = batch[start:stop]
        luma = scratch.get('luma', (chunk.shape[0], h - 2 * crop_border, w - 2 * crop_border))
        for i in range(0, chunk.shape[0], step):
            _prepare(chunk[i:i + step].to(target), input_order, convert_to, crop_border, channel_dim,
                     luma[i:i + step], scratch)
        return _niqe_gray(luma, step, scratch).cpu()

    count = batch.shape[0]
    threads = torch.get_num_threads()
    if target.type == 'cpu' and threads > 1 and count:
        tasks = _cpu_tasks(count, batch_size, threads)
        results = _run_cpu_tasks(score, tasks, h * w, min(threads, len(tasks)))
    else:
        # On the CPU, a few images at a time keep the float64 smoothing and the block sums in cache.
        step = batch_size if target.type != 'cpu' else _cpu_step(h * w)
        scratch = Scratch(target)
        with torch.inference_mode():
            results = [score(start, min(start + batch_size, count), step, scratch)
                       for start in range(0, count, batch_size)]
    if not results:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(results).numpy()


def niqe_score(img: Union[np.ndarray, torch.Tensor], crop_border: int = 0, input_order: str = 'HWC',
               convert_to: str = 'y', device: Optional[Union[str, torch.device]] = None) -> float:
    """NIQE of one image ((H, W, 3) for 'HWC', (3, H, W) for 'CHW', or (H, W)): :func:`niqe_batch` of one."""
    img_t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    return float(niqe_batch(img_t.unsqueeze(0), crop_border, input_order, convert_to, device=device)[0])
