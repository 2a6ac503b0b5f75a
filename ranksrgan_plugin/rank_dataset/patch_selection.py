"""Where the rank dataset takes its patches: the grid, the sharpness filter and the per-image cap.

The original MATLAB script (``generate_rankdataset.m`` with ``compute_sharpness.m``) and the
behaviours this plugin had before, each selectable by name:

- grid ``original``: MATLAB ``for h = 1:stride:H-patch``, i.e. tops ``range(0, H - patch, stride)``
  (0-based): a patch whose top is exactly ``H - patch`` is not taken, and an image exactly one patch
  high gives none; the same for lefts. ``full``: every full patch, ``range(0, H - patch + 1, stride)``.
- sharpness ``original``: MATLAB ``rgb2gray`` of the uint8 patch (rounded to uint8), local standard
  deviation with the NIQE Gaussian window (``fspecial('gaussian', 7, 7/6)``, 'replicate' borders:
  ``sigma = sqrt(G * (im - G * im)^2)``), ``blkproc`` block means over ``block`` x ``block`` blocks of
  the zero-padded map (a 296-pixel patch gives 4 x 4 blocks, the edge ones holding 8 real rows or
  columns and zeros), summed. ``stdfilt3``: gray (unrounded, MATLAB weights), 3x3 local standard
  deviation (MATLAB ``stdfilt``: n-1, symmetric padding), means of the full blocks only (a patch
  smaller than one block is one block), summed.
- both measures keep a patch when ``sharpness >= threshold`` (the original compares with ``>=``).
- cap ``random``: when more than ``limit`` locations pass, a seeded random ``limit`` of them (the
  original's ``randperm``); ``first``: the first ``limit`` in raster order.
"""
import hashlib
import random
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .patch_metrics import rgb2gray_uint8

GRID_RULES = ('original', 'full')
SHARPNESS_MEASURES = ('original', 'stdfilt3')
PATCH_CHOICES = ('random', 'first')

# MATLAB rgb2gray weights (4 digits), in BGR order (images here are cv2 BGR): the stdfilt3 measure.
_GRAY_WEIGHTS_BGR = np.array([0.1140, 0.5870, 0.2989], dtype=np.float64)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}.')


def patch_grid(height: int, width: int, patch_size: int, stride: int, rule: str = 'full') -> List[Tuple[int, int]]:
    """Top-left corners (top, left) of the patches on the grid, in raster order.

    ``rule``: see the module doc; the default stays ``full`` (this function's behaviour before
    ``original`` existed), the rank-dataset builder's default is ``original``.
    """
    if patch_size <= 0 or stride <= 0:
        raise ValueError(f'patch size and stride must be positive, got {patch_size} and {stride}.')
    _check_choice('grid', rule, GRID_RULES)
    extra = 1 if rule == 'full' else 0
    tops = range(0, height - patch_size + extra, stride)
    lefts = range(0, width - patch_size + extra, stride)
    return [(top, left) for top in tops for left in lefts]


def crop(img: np.ndarray, corner: Tuple[int, int], patch_size: int) -> np.ndarray:
    """The ``patch_size`` square of ``img`` whose top-left corner is ``corner`` (a view)."""
    top, left = corner
    return img[top:top + patch_size, left:left + patch_size]


def local_std(gray: np.ndarray) -> np.ndarray:
    """3x3 local standard deviation with n-1 normalisation and symmetric padding (MATLAB stdfilt)."""
    padded = cv2.copyMakeBorder(gray, 1, 1, 1, 1, cv2.BORDER_REFLECT)
    mean = cv2.blur(padded, (3, 3), borderType=cv2.BORDER_ISOLATED)[1:-1, 1:-1]
    mean_sq = cv2.blur(padded * padded, (3, 3), borderType=cv2.BORDER_ISOLATED)[1:-1, 1:-1]
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0) * 9.0 / 8.0)


def sharpness(patch: np.ndarray, block: int = 96) -> float:
    """The ``stdfilt3`` measure: sum over full blocks of the block mean of the 3x3 local-std map."""
    gray = patch.astype(np.float64) @ _GRAY_WEIGHTS_BGR if patch.ndim == 3 else patch.astype(np.float64)
    std_map = local_std(gray)
    block_h, block_w = min(block, std_map.shape[0]), min(block, std_map.shape[1])
    rows, cols = std_map.shape[0] // block_h, std_map.shape[1] // block_w
    blocks = std_map[:rows * block_h, :cols * block_w].reshape(rows, block_h, cols, block_w)
    return float(blocks.mean(axis=(1, 3)).sum())


def gaussian_taps(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """The 1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (the NIQE window), normalised to sum 1:
    the window is ``outer(taps, taps)`` (to 3e-17)."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-offsets ** 2 / (2 * sigma * sigma))
    return taps / taps.sum()


def gaussian_local_std(gray: np.ndarray) -> np.ndarray:
    """``sqrt(imfilter((im - imfilter(im, w, 'replicate')).^2, w, 'replicate'))`` with the NIQE window.

    Filtered separably (rows, then columns; as MATLAB's imfilter does for separable kernels on large
    images): 2.3x faster than the 7x7 filter, equal to it to ~5e-16 relative.
    """
    taps = gaussian_taps()
    mean = cv2.sepFilter2D(gray, cv2.CV_64F, taps, taps, borderType=cv2.BORDER_REPLICATE)
    diff = gray - mean
    return np.sqrt(np.maximum(cv2.sepFilter2D(diff * diff, cv2.CV_64F, taps, taps,
                                              borderType=cv2.BORDER_REPLICATE), 0))


def padded_block_means(values: np.ndarray, block: int) -> np.ndarray:
    """MATLAB ``blkproc(values, [block block], [0 0], @mean2)``: the map zero-padded to whole blocks."""
    rows, cols = -(-values.shape[0] // block), -(-values.shape[1] // block)
    padded = np.zeros((rows * block, cols * block), dtype=np.float64)
    padded[:values.shape[0], :values.shape[1]] = values
    return padded.reshape(rows, block, cols, block).mean(axis=(1, 3))


def gaussian_sharpness(patch: np.ndarray, block: int = 96) -> float:
    """The ``original`` measure (``compute_sharpness.m``): see the module doc."""
    gray = rgb2gray_uint8(patch) if patch.ndim == 3 else patch
    return float(padded_block_means(gaussian_local_std(gray.astype(np.float64)), block).sum())


def patch_sharpness(patch: np.ndarray, block: int = 96, measure: str = 'original') -> float:
    """The sharpness of one patch under ``measure`` (``original`` or ``stdfilt3``)."""
    _check_choice('sharpness_measure', measure, SHARPNESS_MEASURES)
    return gaussian_sharpness(patch, block) if measure == 'original' else sharpness(patch, block)


def sharp_corners(img: np.ndarray, corners: Sequence[Tuple[int, int]], patch_size: int,
                  threshold: Optional[float], block: int = 96, measure: str = 'original') -> List[Tuple[int, int]]:
    """The corners whose patch of ``img`` has ``sharpness >= threshold`` (all of them when it is None)."""
    if threshold is None:
        return list(corners)
    if measure == 'original' and img.ndim == 3:
        img = rgb2gray_uint8(img)  # per pixel and exact: once for the image, not per overlapping patch
    return [corner for corner in corners
            if patch_sharpness(crop(img, corner, patch_size), block, measure) >= threshold]


def stable_seed(*parts: object) -> int:
    """A 64-bit integer from ``parts`` (their ``str``), the same on every run, process and platform."""
    text = '\x1f'.join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest()[:8], 'big')


def choose_patches(indices: Sequence[int], limit: int, rule: str = 'random', seed: int = 0) -> List[int]:
    """At most ``limit`` of ``indices``: all when they fit, else the first or a ``seed``-ed random subset.

    The random subset is returned in the order of ``indices``.
    """
    _check_choice('max_patches_choice', rule, PATCH_CHOICES)
    if len(indices) <= limit or rule == 'first':
        return list(indices[:limit])
    picked = set(random.Random(seed).sample(range(len(indices)), limit))
    return [index for position, index in enumerate(indices) if position in picked]
