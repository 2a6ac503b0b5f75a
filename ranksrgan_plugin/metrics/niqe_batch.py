"""Batched NIQE in torch that reproduces ``basicsr.metrics.niqe.calculate_niqe`` (basicsr 1.4.2).

NIQE (Mittal et al., "Making a 'Completely Blind' Image Quality Analyzer") fits a multivariate
Gaussian to 36 natural-scene statistics of the 96x96 blocks of an image (two scales, 18 AGGD/GGD
parameters each) and returns its distance to the Gaussian of pristine images.

BasicSR computes it one image and one block at a time in NumPy; this module computes the same
function on a batch of equal-size images at once, on CPU or CUDA. BasicSR's score hinges on
discrete choices (pixel rounding, an argmin over a grid of AGGD shapes) that flip on last-bit
differences, and NIQE's normalisation amplifies last-bit differences of its float32 intermediates,
so every float32 intermediate is reproduced bit for bit (float64 accumulation where SciPy
accumulates in float64, NumPy 1.x's pairwise summation order for the block means, the same BLAS
calls for the resize); the two one-sided block means are bounded instead and computed exactly only
when the bound leaves the grid choice open. The reference is BasicSR on NumPy 1.x (this project
pins numpy<2): NumPy 2 sums float32 in another order and keeps float32 scalars float32, which moves
BasicSR's own scores by up to ~1e-2. See ``docs/niqe.md`` for every detail that had to match.
"""
import functools
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from scipy.special import gamma as gamma_fn

__all__ = ['calculate_niqe_batched', 'niqe_batch']

BLOCK_SIZE = 96  # the official (and BasicSR's) block size, no overlap
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and both diagonal neighbour products
_INPUT_ORDERS = ('HWC', 'CHW', 'HW')
_CONVERSIONS = ('y', 'gray')
_Y_WEIGHTS = (24.966, 128.553, 65.481)  # BT.601 luma of a BGR image in [0, 1] (basicsr.utils.bgr2ycbcr)
_F32_UNIT = 2.0**-24  # unit roundoff of float32
# Bound on |rhatnorm(ours) / rhatnorm(NumPy) - 1| when only the one-sided means may differ (see _aggd_moments).
_RHATNORM_REL_TOL = 24 * _F32_UNIT
_CPU_PIXELS_PER_THREAD = 1 << 18  # CPU: pixels per step and thread (up to 4), to keep the work in cache

ImageBatch = Union[np.ndarray, torch.Tensor, Sequence[Union[np.ndarray, torch.Tensor]]]


class _Scratch:
    """Work buffers reused from one group of images to the next within a call.

    Every fresh multi-megabyte CPU tensor costs page faults on first touch, about as much as the
    arithmetic done in it, so the large intermediates are views into buffers kept here.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._buffers: Dict[Tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def get(self, key: str, shape: Tuple[int, ...], dtype: torch.dtype = torch.float32,
            device: Optional[torch.device] = None) -> torch.Tensor:
        """A contiguous uninitialised tensor of ``shape``; valid until the next ``get`` with the same key."""
        device = device or self.device
        numel = math.prod(shape)
        buf = self._buffers.get((key, dtype, device))
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[(key, dtype, device)] = buf
        return buf[:numel].view(shape)


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


def _imresize_half(img: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
    """``imresize(img / 255., 0.5) * 255.`` of BasicSR (MATLAB bicubic, antialiased) on a float32 (N, H, W) batch.

    BasicSR computes every output row, then every output column, as one float32 ``torch.mv`` over
    8 taps; the summation order inside the CPU BLAS (MKL) depends on the memory alignment of each
    row, and NIQE's normalisation amplifies those last-bit differences to ~1e-3 in the score. So this
    step runs on the CPU with the very same ``mv`` calls, batched by laying the N images out so that
    every row keeps BasicSR's length and alignment (H and W are multiples of 96).
    """
    cpu = torch.device('cpu')
    n, h, w = img.shape
    starts_h, weights_h, before_h, after_h = _half_resize_taps(h)
    starts_w, weights_w, before_w, after_w = _half_resize_taps(w)
    out_h, out_w = len(starts_h), len(starts_w)
    # Pass 1 (rows): (H_pad, N, W), so that one mv covers output row i of all images.
    padded = scratch.get('resize_rows_in', (before_h + h + after_h, n, w), device=cpu)
    torch.div(img.permute(1, 0, 2).cpu(), _scalar(255.0, padded), out=padded[before_h:before_h + h])
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


def _smooth(x: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
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


def _sqrt32(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 square root of float32 values, like ``np.sqrt`` (torch's CPU one is not, always).

    On the CPU this is NumPy's own SIMD square root; elsewhere a float64 square root rounded once.
    """
    x = x.float()
    if x.device.type == 'cpu':
        return torch.from_numpy(np.sqrt(x.numpy()))
    return torch.sqrt(x.double()).float()


def _mscn(img: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients (Eq. 1 of the paper) of (N, H, W), float32 like BasicSR."""
    both = scratch.get('mscn_in', (img.shape[0], 2) + tuple(img.shape[1:]))
    both[:, 0] = img
    torch.mul(img, img, out=both[:, 1])
    smoothed = _smooth(both, scratch)
    mu, var = smoothed[:, 0], smoothed[:, 1]
    var -= mu * mu
    sigma = _sqrt32(var.abs_())
    sigma += 1
    out = img - mu
    out /= sigma
    return out


@functools.cache
def _pairwise_layout(n: int) -> Tuple[int, Tuple[Tuple[int, int], ...]]:
    """How NumPy sums a contiguous float32 array of n elements: leaf length, (leaves, depth) per buffer.

    ``np.add.reduce`` works through buffers of 8192 elements; each buffer is summed by pairwise
    summation (``pairwise_sum`` in numpy/core/src/umath/loops_utils.h.src): a run longer than 128 is
    split at ``n2 = n // 2 - (n // 2) % 8``, a shorter one (a leaf) is added with 8 interleaved
    accumulators. For NIQE's block sizes (96 * 96 and 48 * 48) every buffer splits into 2**depth
    leaves of one common length, a multiple of 8, which is all :func:`_numpy_sum32` implements.
    """

    def leaves(length: int) -> List[int]:
        if length <= 128:
            return [length]
        half = length // 2 - (length // 2) % 8
        return leaves(half) + leaves(length - half)

    parts = [leaves(min(8192, n - start)) for start in range(0, n, 8192)]
    leaf = parts[0][0]
    if leaf % 8 or any(set(p) != {leaf} or len(p) & (len(p) - 1) for p in parts):
        raise NotImplementedError(f'NIQE: no vectorised NumPy summation order for {n} elements')
    return leaf, tuple((len(p), len(p).bit_length() - 1) for p in parts)


def _numpy_sum32(v: torch.Tensor) -> torch.Tensor:
    """``np.add.reduce(row)`` of every row (last dimension, contiguous) of float32 ``v``, bit for bit."""
    *lead, n = v.shape
    leaf, buffers = _pairwise_layout(n)
    lanes = v.view(*lead, n // leaf, leaf // 8, 8)
    acc = lanes[..., 0, :].clone()
    for i in range(1, lanes.shape[-2]):
        acc += lanes[..., i, :]
    leaves = ((acc[..., 0] + acc[..., 1]) + (acc[..., 2] + acc[..., 3])) + \
             ((acc[..., 4] + acc[..., 5]) + (acc[..., 6] + acc[..., 7]))
    total, first = None, 0
    for count, depth in buffers:
        part = leaves[..., first:first + count]
        first += count
        for _ in range(depth):
            part = part[..., 0::2] + part[..., 1::2]
        total = part[..., 0] if total is None else total + part[..., 0]
    return total


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor on ``like``'s device, for exact division.

    On CUDA, ``tensor / python_number`` multiplies by the reciprocal, which is not correctly rounded;
    dividing by a device tensor is a true IEEE division, like NumPy's (and torch's on the CPU).
    """
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def _mean32(total: torch.Tensor, count: Union[torch.Tensor, int]) -> torch.Tensor:
    """``np.mean`` of float32 data from its float32 sum: float64 quotient rounded to float32 (0/0 is NaN)."""
    total = total.double()
    count = count.double() if isinstance(count, torch.Tensor) else _scalar(count, total)
    return (total / count).float().double()


def _leaf_layout(lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Leaves of NumPy's pairwise summation of ``lengths`` (R,) elements: starts, lengths (R, 2**depth), depth.

    NumPy (``pairwise_sum`` in loops_utils.h.src) halves a run longer than 128 at
    ``n2 = n // 2 - (n // 2) % 8`` and sums the halves recursively; a leaf that is already short
    enough is carried down as (leaf, empty) so that every row has the same full binary tree.
    """
    starts = torch.zeros_like(lengths).unsqueeze(1)
    lens = lengths.unsqueeze(1)
    depth = 0
    while bool((lens > 128).any()):
        split = lens > 128
        half = lens // 2
        left = torch.where(split, half - half % 8, lens)
        starts = torch.stack([starts, starts + left], dim=-1).flatten(1)
        lens = torch.stack([left, lens - left], dim=-1).flatten(1)
        depth += 1
    return starts, lens, depth


def _numpy_sum32_ragged(buf: torch.Tensor, lengths: torch.Tensor, cap: int) -> torch.Tensor:
    """``np.add.reduce(row[:length])`` of float32 rows of different lengths, bit for bit: (R,) float32.

    ``buf`` is (R, cap + 16) float32 with each row's values packed at the front and zeros after them
    (elements [cap, cap + 8) must be zero; ``cap`` is a multiple of 8). Same order as
    :func:`_numpy_sum32`, for any length: leaves start at multiples of 8, so gathering whole groups of
    8 reproduces the 8 accumulators, the last ``n % 8`` elements are added one by one, and adding
    exact zeros is a no-op.
    """
    rows = buf.shape[0]
    groups = buf.view(rows, -1, 8)
    zero_group = cap // 8
    total = None
    for chunk in range(0, max(cap, 1), 8192):
        starts, lens, depth = _leaf_layout((lengths - chunk).clamp(0, 8192))
        starts = starts + chunk
        full = lens // 8
        num_leaves = lens.shape[1]
        max_groups = int(full.max())
        leaf = torch.zeros(rows, num_leaves, dtype=buf.dtype, device=buf.device)
        if max_groups:
            step = torch.arange(max_groups, device=buf.device)
            gidx = torch.where(step < full.unsqueeze(-1), (starts // 8).unsqueeze(-1) + step, zero_group)
            tiles = groups.gather(1, gidx.view(rows, -1, 1).expand(-1, -1, 8)).view(rows, num_leaves, max_groups, 8)
            acc = tiles[:, :, 0]
            for i in range(1, max_groups):
                acc = acc + tiles[:, :, i]
            leaf = ((acc[..., 0] + acc[..., 1]) + (acc[..., 2] + acc[..., 3])) + \
                   ((acc[..., 4] + acc[..., 5]) + (acc[..., 6] + acc[..., 7]))
        rest = lens % 8
        if bool(rest.any()):
            first = starts + full * 8
            for j in range(7):
                value = buf.gather(1, (first + j).clamp(max=cap + 7))
                leaf = leaf + torch.where(rest > j, value, torch.zeros_like(value))
        for _ in range(depth):
            leaf = leaf[:, 0::2] + leaf[:, 1::2]
        total = leaf[:, 0] if total is None else total + leaf[:, 0]
    return total


def _exact_one_sided_means(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mean(x[x < 0]**2)`` and ``mean(x[x > 0]**2)`` of each row of float32 ``x`` (R, n), exactly as NumPy 1.x.

    The selected squares are packed to the front of a zeroed row (order kept), then summed in
    NumPy's order by :func:`_numpy_sum32_ragged`. Float64 tensors holding float32 values; NaN for an
    empty selection. Used for the few rows whose AGGD shape the cheap bound leaves open.
    """
    rows, n = x.shape
    cap = -(-n // 8) * 8
    buf = torch.zeros(rows, 2, cap + 16, dtype=x.dtype, device=x.device)
    neg, pos = x < 0, x > 0
    rank_neg = torch.cumsum(neg, 1, dtype=torch.int32)
    rank_pos = torch.cumsum(pos, 1, dtype=torch.int32)
    dump = torch.full_like(rank_neg, cap + 8)  # never read: zeros go nowhere
    dest = torch.where(neg, rank_neg - 1, torch.where(pos, rank_pos - 1 + (cap + 16), dump))
    buf.view(rows, -1).scatter_(1, dest.long(), x * x)
    counts = torch.stack([rank_neg[:, -1], rank_pos[:, -1]], dim=1)
    sums = _numpy_sum32_ragged(buf.view(rows * 2, -1), counts.view(-1).long(), cap).view(rows, 2)
    means = _mean32(sums, counts)
    return means[:, 0], means[:, 1]


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
    g = (_sqrt32(mean_neg) / _sqrt32(mean_pos)).double()
    return (rhat * (g * g * g + 1) * (g + 1)) / ((g * g + 1) * (g * g + 1))


def _aggd_moments(fields: torch.Tensor, tables: Dict[str, torch.Tensor],
                  scratch: _Scratch) -> Tuple[torch.Tensor, torch.Tensor]:
    """The sample moments of BasicSR's AGGD fit of every row of ``fields`` (R, n) float32.

    Returns (R, 3) float64 ``[mean(x[x < 0]**2), mean(x[x > 0]**2), rhat]`` and an (R,) mask of the
    rows whose one-sided means must be recomputed exactly (:func:`_exact_one_sided_means`).

    In ``basicsr.metrics.niqe.estimate_aggd_param`` the four sample means are float32 NumPy means
    (pairwise sums), and the chosen shape (an argmin over a 0.001 grid) flips when they change in the
    last bit. ``mean(|x|)`` and ``mean(x**2)`` are reproduced bit for bit (:func:`_numpy_sum32`), so
    rhat is exact. The one-sided means sum a data-dependent selection; here they are the same kind of
    float32 sum over the zero-filled row. Summing non-negative terms, each sum is within h float32
    roundoffs u of the exact one, h being the height of its summation tree (25 here, at most 32 in
    NumPy's), so the two means differ by at most 59u, their ratio g by 65u, and rhatnorm = rhat * F(g)
    by 0.151 * 65u ~ 10u (0.151 = max |d log F / d log g|), below ``_RHATNORM_REL_TOL``. Only rows
    whose grid choice could change within that tolerance (about 1 %) need the exact means; for the
    others the betas may differ from BasicSR's in the last float32 bit (< 1e-5 in the score).
    """
    rows, n = fields.shape
    parts = scratch.get('aggd_parts', (4, rows, n))
    # x where x < 0 else 0, squared: NumPy's x[x < 0]**2 with zeros in place of the other elements.
    neg = torch.clamp(fields, max=0, out=parts[0])
    count_neg = -torch.sign(neg, out=parts[1]).sum(1)  # float32 sums of +-1: exact
    pos = torch.clamp(fields, min=0, out=parts[1])
    count_pos = torch.sign(pos, out=parts[2]).sum(1)
    neg.mul_(neg)
    pos.mul_(pos)
    torch.abs(fields, out=parts[2])
    torch.mul(fields, fields, out=parts[3])
    sum_neg, sum_pos, sum_abs, sum_sq = _numpy_sum32(parts)
    moments = torch.stack([_mean32(sum_neg, count_neg), _mean32(sum_pos, count_pos),
                           _mean32(sum_abs, n) ** 2 / _mean32(sum_sq, n)], dim=1)
    rhatnorm = _rhatnorm(*moments.unbind(1))
    unsure = _aggd_shape_index(rhatnorm * (1 - _RHATNORM_REL_TOL), tables) != \
        _aggd_shape_index(rhatnorm * (1 + _RHATNORM_REL_TOL), tables)
    return moments, unsure


def _aggd_params(moments: torch.Tensor, tables: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """alpha, beta_l, beta_r (float64) and the grid index of BasicSR's AGGD fit, from (..., 3) moments."""
    mean_neg, mean_pos, rhat = moments.unbind(-1)
    idx = _aggd_shape_index(_rhatnorm(mean_neg, mean_pos, rhat), tables)
    factor = tables['beta_factor'][idx]
    return tables['gam'][idx], _sqrt32(mean_neg).double() * factor, _sqrt32(mean_pos).double() * factor, idx


def _roll_pieces(size: int, shift: int) -> List[Tuple[slice, slice]]:
    """(destination, source) slices with ``dest[i] = src[(i - shift) % size]``, i.e. ``np.roll`` by ``shift``."""
    if shift == 0:
        return [(slice(0, size), slice(0, size))]
    if shift > 0:
        return [(slice(shift, size), slice(0, size - shift)), (slice(0, shift), slice(size - shift, size))]
    return [(slice(0, size + shift), slice(-shift, size)), (slice(size + shift, size), slice(0, -shift))]


def _neighbour_fields(img: torch.Tensor, block: int, scratch: _Scratch) -> torch.Tensor:
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


def _scale_features(img: torch.Tensor, block: int, step: int, tables: Dict[str, torch.Tensor],
                    scratch: _Scratch) -> torch.Tensor:
    """The 18 NIQE features of every block of one scale: (N, num_blocks, 18) float64.

    The moments are taken ``step`` images at a time; the few rows that need exact one-sided means
    are collected and done in one go at the end.
    """
    moments, unsure, pending = [], [], []
    for i in range(0, img.shape[0], step):
        fields = _neighbour_fields(_mscn(img[i:i + step], scratch), block, scratch)
        part, flags = _aggd_moments(fields, tables, scratch)
        moments.append(part)
        unsure.append(flags)
        pending.append(fields[flags])  # a copy: the scratch fields are reused by the next step
    moments, unsure = torch.cat(moments), torch.cat(unsure)
    if bool(unsure.any()):
        moments[unsure, :2] = torch.stack(_exact_one_sided_means(torch.cat(pending)), dim=1)
    alpha, beta_l, beta_r, idx = (t.view(img.shape[0], -1, 1 + len(_SHIFTS)) for t in _aggd_params(moments, tables))
    mean = (beta_r - beta_l) * tables['mean_factor'][idx]
    feats = [alpha[..., 0], (beta_l[..., 0] + beta_r[..., 0]) / 2]
    for k in range(1, 1 + len(_SHIFTS)):
        feats += [alpha[..., k], mean[..., k], beta_l[..., k], beta_r[..., k]]
    return torch.stack(feats, dim=-1)


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


def _niqe_gray(img: torch.Tensor, step: int, scratch: _Scratch) -> torch.Tensor:
    """NIQE of a float32 (N, H, W) batch of rounded gray/Y images in [0, 255], ``step`` images at a time."""
    tables = _device_tables(img.device)
    n, h, w = img.shape
    img = img[:, :h // BLOCK_SIZE * BLOCK_SIZE, :w // BLOCK_SIZE * BLOCK_SIZE]
    img2 = _imresize_half(img, scratch)
    feats = [_scale_features(img, BLOCK_SIZE, step, tables, scratch),
             _scale_features(img2, BLOCK_SIZE // 2, step, tables, scratch)]
    return _mvg_distance(torch.cat(feats, dim=-1), tables)


def _y_channel(planes: torch.Tensor, scratch: _Scratch) -> torch.Tensor:
    """``to_y_channel`` of BasicSR on float32 (N, C, H, W) BGR planes in [0, 255]: unrounded float32 (N, H, W).

    BasicSR divides by 255 in float32, takes the BT.601 dot product in float64 (NumPy promotes the
    float32 image against the Python weights), divides by 255, rounds to float32 and multiplies by 255
    in float32. Separate multiplies and adds in that order reproduce it for every 8-bit colour.
    ``planes`` is overwritten.
    """
    planes /= _scalar(255.0, planes)
    if planes.shape[1] == 1:
        return planes[:, 0] * 255.0  # to_y_channel leaves one-channel images as x / 255 * 255
    x = scratch.get('y_planes', tuple(planes.shape), torch.float64).copy_(planes)
    x *= torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    y = x[:, 0] + x[:, 1]
    y += x[:, 2]
    y += 16.0
    y /= _scalar(255.0, y)
    out = y.float()
    out *= 255.0
    return out


def _gray_channel(planes: torch.Tensor) -> torch.Tensor:
    """BasicSR's ``cv2.cvtColor(img / 255., cv2.COLOR_BGR2GRAY) * 255.`` per image, by OpenCV itself.

    OpenCV's float32 BGR2GRAY uses fused multiply-adds in its SIMD body and plain ones in the tail of
    each row stripe, so it is called image by image on the CPU, on the uncropped image like BasicSR.
    """
    if planes.shape[1] != 3:
        raise ValueError(f"convert_to='gray' needs 3-channel BGR images (cv2 BGR2GRAY), got {planes.shape[1]}")
    import cv2

    bgr = planes.permute(0, 2, 3, 1).cpu().numpy()
    gray = [cv2.cvtColor(np.ascontiguousarray(im) / 255., cv2.COLOR_BGR2GRAY) * 255. for im in bgr]
    return torch.from_numpy(np.stack(gray)).to(planes.device)


def _as_batch(imgs: ImageBatch) -> torch.Tensor:
    """A tensor view of ``imgs`` (no copy where possible); a sequence must hold equal-shape images."""
    if isinstance(imgs, torch.Tensor):
        return imgs
    if isinstance(imgs, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(imgs))
    items: List[torch.Tensor] = [_as_batch(im) for im in imgs]
    if not items:
        raise ValueError('niqe_batch: got an empty sequence of images')
    for i, item in enumerate(items):
        if item.shape != items[0].shape:
            raise ValueError(f'niqe_batch: images in a batch must have equal shapes; image 0 is '
                             f'{tuple(items[0].shape)}, image {i} is {tuple(item.shape)}')
    return torch.stack(items)


def _layout(shape: Tuple[int, ...], input_order: str) -> Tuple[int, int, Optional[int]]:
    """(height, width, channel dim or None) of a batch of the given shape, or a ValueError."""
    if input_order not in _INPUT_ORDERS:
        raise ValueError(f'niqe_batch: input_order must be one of {_INPUT_ORDERS}, got {input_order!r}')
    if len(shape) == 3:
        return shape[1], shape[2], None
    if len(shape) == 4 and input_order != 'HW':
        channel_dim = 3 if input_order == 'HWC' else 1
        if shape[channel_dim] not in (1, 3):
            raise ValueError(f'niqe_batch: expected 1 or 3 channels (BGR) on dim {channel_dim} for '
                             f'{input_order!r}, got shape {tuple(shape)}')
        h, w = (shape[1], shape[2]) if input_order == 'HWC' else (shape[2], shape[3])
        return h, w, channel_dim
    raise ValueError(f'niqe_batch: expected (N, H, W) or (N, H, W, C) / (N, C, H, W) images for '
                     f'input_order={input_order!r}, got shape {tuple(shape)}')


def _check_size(h: int, w: int, crop_border: int) -> None:
    """Raise a ValueError when no full 96x96 block is left after cropping (BasicSR fails inside imresize)."""
    if crop_border < 0:
        raise ValueError(f'niqe_batch: crop_border must be >= 0, got {crop_border}')
    ch, cw = h - 2 * crop_border, w - 2 * crop_border
    if ch < BLOCK_SIZE or cw < BLOCK_SIZE:
        raise ValueError(f'niqe_batch: image too small for NIQE: {h}x{w} with crop_border={crop_border} leaves '
                         f'{max(ch, 0)}x{max(cw, 0)} pixels, but NIQE needs at least one {BLOCK_SIZE}x{BLOCK_SIZE} '
                         f'block')


def _crop(img: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels on each side of the last two dimensions."""
    return img[..., border:img.shape[-2] - border, border:img.shape[-1] - border] if border else img


def _prepare(chunk: torch.Tensor, input_order: str, convert_to: str, crop_border: int,
             channel_dim: Optional[int], out: torch.Tensor, scratch: _Scratch) -> None:
    """Raw images -> rounded float32 luma in ``out`` (N, H', W'), converted and cropped like BasicSR."""
    if channel_dim is None:
        planes = chunk.unsqueeze(1)
    else:
        planes = chunk if channel_dim == 1 else chunk.movedim(3, 1)
    if input_order == 'HW' or convert_to == 'y':  # per-pixel conversions: crop first, it is cheaper
        planes = _crop(planes, crop_border)
        planes = scratch.get('planes', tuple(planes.shape)).copy_(planes)  # BasicSR: img.astype(np.float32)
        luma = planes[:, 0] if input_order == 'HW' else _y_channel(planes, scratch)
    else:
        luma = _crop(_gray_channel(planes.float()), crop_border)
    torch.round(luma, out=out)  # round-half-to-even in both NumPy and torch


def _cpu_step(pixels: int) -> int:
    """Images per step on the CPU: about a quarter megapixel per torch thread, up to 4 threads (measured)."""
    return max(1, _CPU_PIXELS_PER_THREAD * min(torch.get_num_threads(), 4) // pixels)


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
    if convert_to not in _CONVERSIONS:
        raise ValueError(f'niqe_batch: convert_to must be one of {_CONVERSIONS}, got {convert_to!r}')
    if batch_size < 1:
        raise ValueError(f'niqe_batch: batch_size must be >= 1, got {batch_size}')
    batch = _as_batch(imgs)
    h, w, channel_dim = _layout(tuple(batch.shape), input_order)
    _check_size(h, w, crop_border)
    if batch.dtype == torch.bool or batch.is_complex():
        raise ValueError(f'niqe_batch: expected real-valued images, got {batch.dtype}')
    target = torch.device(device) if device is not None else batch.device
    # On the CPU, a few images at a time keep the float64 smoothing and the block sums in cache.
    step = batch_size if target.type == 'cuda' else _cpu_step(h * w)
    scratch = _Scratch(target)
    results = []
    with torch.inference_mode():
        for start in range(0, batch.shape[0], batch_size):
            chunk = batch[start:start + batch_size]
            luma = scratch.get('luma', (chunk.shape[0], h - 2 * crop_border, w - 2 * crop_border))
            for i in range(0, chunk.shape[0], step):
                _prepare(chunk[i:i + step].to(target), input_order, convert_to, crop_border, channel_dim,
                         luma[i:i + step], scratch)
            results.append(_niqe_gray(luma, step, scratch).cpu())
    if not results:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(results).numpy()


@METRIC_REGISTRY.register()
def calculate_niqe_batched(img: Union[np.ndarray, torch.Tensor],
                           crop_border: int,
                           input_order: str = 'HWC',
                           convert_to: str = 'y',
                           **kwargs: Any) -> float:
    """NIQE of one image with the torch implementation; drop-in for ``basicsr.metrics.calculate_niqe``.

    Usable in BasicSR options as ``val.metrics.<name>.type: calculate_niqe_batched``.

    Args:
        img: one image in [0, 255], BGR, (H, W, 3) for 'HWC', (3, H, W) for 'CHW', or (H, W).
        crop_border: pixels cropped from each edge.
        input_order: 'HWC', 'CHW' or 'HW'.
        convert_to: 'y' or 'gray'.
        **kwargs: ``device`` is honoured; anything else is ignored, like BasicSR does.

    Returns:
        The NIQE score (lower is better).
    """
    img_t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    return float(niqe_batch(img_t.unsqueeze(0), crop_border, input_order, convert_to, device=kwargs.get('device'))[0])
