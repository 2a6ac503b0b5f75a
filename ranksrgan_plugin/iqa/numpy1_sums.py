"""NumPy 1.x float32 arithmetic reproduced in torch, bit for bit: summation order, means, square roots.

Why this exists: the batched NIQE (:mod:`ranksrgan_plugin.iqa.niqe`) must be bit-equal to BasicSR's
``calculate_niqe`` on NumPy 1.x (this project pins numpy<2). BasicSR's score hinges on an argmin over a
grid of AGGD shapes that flips on last-bit differences of float32 block means, and those means are
NumPy's pairwise sums (``pairwise_sum`` in numpy/core/src/umath/loops_utils.h.src), whose order torch's
reductions do not follow. NumPy 2 sums float32 in another order, which moves BasicSR's own scores by up
to ~1e-2. ``docs/niqe.md`` lists every detail that had to match.
"""
import functools
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

from .image_prep import exact_scalar

__all__ = ['numpy_sum32', 'numpy_sum32_torch', 'mean32', 'exact_one_sided_means', 'sqrt32']


def sqrt32(x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Correctly rounded float32 square root of float32 values, like ``np.sqrt`` (torch's CPU one is not, always).

    On the CPU this is NumPy's own SIMD square root; elsewhere a float64 square root rounded once.
    ``out``: an optional float32 tensor of ``x``'s shape (may be ``x`` itself) for the result.
    """
    x = x.float()
    if x.device.type == 'cpu':
        if out is None:
            return torch.from_numpy(np.sqrt(x.numpy()))
        np.sqrt(x.numpy(), out=out.numpy())
        return out
    root = torch.sqrt(x.double()).float()
    return root if out is None else out.copy_(root)


@functools.cache
def _pairwise_layout(n: int) -> Tuple[int, Tuple[Tuple[int, int], ...]]:
    """How NumPy sums a contiguous float32 array of n elements: leaf length, (leaves, depth) per buffer.

    ``np.add.reduce`` works through buffers of 8192 elements; each buffer is summed by pairwise
    summation (``pairwise_sum`` in numpy/core/src/umath/loops_utils.h.src): a run longer than 128 is
    split at ``n2 = n // 2 - (n // 2) % 8``, a shorter one (a leaf) is added with 8 interleaved
    accumulators. For NIQE's block sizes (96 * 96 and 48 * 48) every buffer splits into 2**depth
    leaves of one common length, a multiple of 8, which is all :func:`numpy_sum32` implements.
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


def numpy_sum32(v: torch.Tensor) -> torch.Tensor:
    """``np.add.reduce(row)`` of every row (last dimension, contiguous) of float32 ``v``, bit for bit.

    On the CPU with NumPy 1.x this is NumPy's own reduction over all rows in one call (several times
    faster than the emulation, and checked once against it: :func:`_numpy_reduce_is_numpy1`); elsewhere
    the torch emulation :func:`numpy_sum32_torch`.
    """
    if v.device.type == 'cpu' and v.is_contiguous() and _numpy_reduce_is_numpy1(v.shape[-1]):
        return torch.from_numpy(np.add.reduce(v.numpy(), axis=-1))
    return numpy_sum32_torch(v)


@functools.cache
def _numpy_reduce_is_numpy1(n: int) -> bool:
    """Whether the installed NumPy's ``np.add.reduce(a, axis=-1)`` of float32 rows of n elements is NumPy 1.x's order.

    NumPy 1.x sums each contiguous row pairwise in buffers of 8192 (what :func:`numpy_sum32_torch`
    emulates), whether the rows come one at a time or as a 2-D array; NumPy 2 sums in another order.
    Checked on rows of wide-ranging values, on which another order gives other roundings.
    """
    if np.lib.NumpyVersion(np.__version__) >= '2.0.0':
        return False
    try:
        _pairwise_layout(n)
    except NotImplementedError:
        return False
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((16, n)) * np.exp(rng.uniform(-8, 8, (16, n)))).astype(np.float32) ** 2
    rows = np.array([np.add.reduce(r) for r in x])
    return bool(np.array_equal(np.add.reduce(x, axis=-1), rows)
                and np.array_equal(numpy_sum32_torch(torch.from_numpy(x)).numpy(), rows))


def numpy_sum32_torch(v: torch.Tensor) -> torch.Tensor:
    """``np.add.reduce(row)`` of every row (last dim, contiguous) of float32 ``v``: NumPy 1.x's order, in torch."""
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


def mean32(total: torch.Tensor, count: Union[torch.Tensor, int]) -> torch.Tensor:
    """``np.mean`` of float32 data from its float32 sum: float64 quotient rounded to float32 (0/0 is NaN)."""
    total = total.double()
    count = count.double() if isinstance(count, torch.Tensor) else exact_scalar(count, total)
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
    :func:`numpy_sum32`, for any length: leaves start at multiples of 8, so gathering whole groups of
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


def exact_one_sided_means(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
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
    means = mean32(sums, counts)
    return means[:, 0], means[:, 1]


