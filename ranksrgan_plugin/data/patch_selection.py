"""Where the rank dataset takes its patches: a grid, the sharpness filter and the label-gap filter.

Interpretations of the original MATLAB scripts (REFERENCE.md), chosen and fixed here:
- grid: top-left corners every ``stride`` pixels while the patch fits (no partial patches);
- sharpness of a patch: gray image (MATLAB ``rgb2gray`` weights) in [0, 255], local standard
  deviation over 3x3 windows (MATLAB ``stdfilt``: unbiased, symmetric padding), averaged over each
  full ``block`` x ``block`` block of the patch, summed over the blocks. The paper keeps a location
  when the reference level's (ESRGAN's) sharpness exceeds 40 with 96-pixel blocks; a patch smaller
  than one block is one block.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

# MATLAB rgb2gray weights, in BGR order (images here are cv2 BGR).
_GRAY_WEIGHTS_BGR = np.array([0.1140, 0.5870, 0.2989], dtype=np.float64)


def patch_grid(height: int, width: int, patch_size: int, stride: int) -> List[Tuple[int, int]]:
    """Top-left corners (top, left) of every full patch on the grid, in raster order."""
    if patch_size <= 0 or stride <= 0:
        raise ValueError(f'patch size and stride must be positive, got {patch_size} and {stride}.')
    tops = range(0, height - patch_size + 1, stride)
    lefts = range(0, width - patch_size + 1, stride)
    return [(top, left) for top in tops for left in lefts]


def crop(img: np.ndarray, corner: Tuple[int, int], patch_size: int) -> np.ndarray:
    top, left = corner
    return img[top:top + patch_size, left:left + patch_size]


def local_std(gray: np.ndarray) -> np.ndarray:
    """3x3 local standard deviation with n-1 normalisation and symmetric padding (MATLAB stdfilt)."""
    padded = cv2.copyMakeBorder(gray, 1, 1, 1, 1, cv2.BORDER_REFLECT)
    mean = cv2.blur(padded, (3, 3), borderType=cv2.BORDER_ISOLATED)[1:-1, 1:-1]
    mean_sq = cv2.blur(padded * padded, (3, 3), borderType=cv2.BORDER_ISOLATED)[1:-1, 1:-1]
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0) * 9.0 / 8.0)


def sharpness(patch: np.ndarray, block: int = 96) -> float:
    """Sum over full ``block``-pixel blocks of the block mean of the local-std map (see module doc)."""
    gray = patch.astype(np.float64) @ _GRAY_WEIGHTS_BGR if patch.ndim == 3 else patch.astype(np.float64)
    std_map = local_std(gray)
    block_h, block_w = min(block, std_map.shape[0]), min(block, std_map.shape[1])
    rows, cols = std_map.shape[0] // block_h, std_map.shape[1] // block_w
    blocks = std_map[:rows * block_h, :cols * block_w].reshape(rows, block_h, cols, block_w)
    return float(blocks.mean(axis=(1, 3)).sum())


def sharp_corners(img: np.ndarray, corners: Sequence[Tuple[int, int]], patch_size: int, threshold: float,
                  block: int = 96) -> List[Tuple[int, int]]:
    """The corners whose patch of ``img`` is sharper than ``threshold`` (all of them when it is None)."""
    if threshold is None:
        return list(corners)
    return [corner for corner in corners if sharpness(crop(img, corner, patch_size), block) > threshold]
