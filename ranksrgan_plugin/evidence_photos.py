"""Offline photo sets of the Ranker-quality evidence (issue 34): Ranker-training photos and held-out photos.

The held-out photos are disjoint from the Ranker's training photos and from the demo generator's training
photos (astronaut, coffee, hubble_deep_field, immunohistochemistry, motorcycle_right, rocket), so generators
can later be judged on them by a Ranker that never saw them. Every photo ships with scikit-image or
matplotlib (no download); grayscale photos are written as 3-channel images. Besides the photos, HR-side
degradations (Gaussian-blurred HR, noisy HR) can be written as folders, for rank-set ``folder`` levels.
"""
import os
import os.path as osp
from typing import Dict, List, Sequence

import cv2
import numpy as np

# Ranker training: the demo generator's photos, plus retina and grayscale texture / scene photos.
TRAIN_PHOTOS = ('astronaut', 'coffee', 'hubble_deep_field', 'immunohistochemistry', 'motorcycle_right', 'rocket',
                'retina', 'grass', 'moon', 'clock')
# Held out: neither the Ranker nor the demo generator trains on them (24 content tiles of 192 px).
HELDOUT_PHOTOS = ('chelsea', 'motorcycle_left', 'grace_hopper', 'camera', 'coins', 'gravel')
TILE = 192
MIN_TILE_STD = 10.0  # a tile with less grey-level spread is background (retina's black border), not content
# HR-side levels (folder name: degradation, strength), see :func:`degrade`.
DEGRADED = {'blur2.0': ('blur', 2.0), 'blur1.0': ('blur', 1.0), 'blur0.5': ('blur', 0.5), 'noise8.0': ('noise', 8.0)}


def load_photo(name: str) -> np.ndarray:
    """The photo ``name`` as a BGR uint8 HxWx3 image."""
    if name == 'grace_hopper':
        import matplotlib

        return cv2.imread(osp.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg'), cv2.IMREAD_COLOR)
    from skimage import data

    if name.startswith('motorcycle_'):
        rgb = data.stereo_motorcycle()[0 if name.endswith('left') else 1]
    else:
        rgb = getattr(data, name)()
    rgb = np.asarray(rgb, dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR) if rgb.ndim == 2 else np.ascontiguousarray(rgb[:, :, ::-1])


def export_photos(folder: str, names: Sequence[str]) -> List[str]:
    """Write ``names`` (cropped to multiples of 4 pixels) as PNGs into ``folder`` (existing files kept); their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in names:
        path = osp.join(folder, f'{name}.png')
        if not osp.isfile(path):
            img = load_photo(name)  # cropped to a multiple of 4 (x4 SR), as the rank-set build crops HR
            cv2.imwrite(path, img[:img.shape[0] // 4 * 4, :img.shape[1] // 4 * 4])
        paths.append(path)
    return paths


def export_evidence_photos(root: str) -> Dict[str, List[str]]:
    """``root``/{train,heldout}/hr: the two photo sets as PNGs, and next to each ``hr`` folder its
    :data:`DEGRADED` folders (``root``/train/blur2.0, ...), the rank sets' ``folder`` levels."""
    paths = {}
    for split, names in (('train', TRAIN_PHOTOS), ('heldout', HELDOUT_PHOTOS)):
        paths[split] = export_photos(osp.join(root, split, 'hr'), names)
        for folder, (kind, strength) in DEGRADED.items():
            export_degraded(osp.join(root, split, 'hr'), osp.join(root, split, folder), kind, strength)
    return paths


def degrade(img: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """``blur``: Gaussian blur of sigma ``strength``; ``noise``: additive Gaussian noise of std ``strength``."""
    if kind == 'blur':
        return cv2.GaussianBlur(img, (0, 0), strength)
    if kind == 'noise':
        noisy = img.astype(np.float32) + np.random.default_rng(seed).normal(0, strength, img.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    raise ValueError(f'unknown degradation {kind!r}')


def export_degraded(hr_folder: str, out_folder: str, kind: str, strength: float) -> str:
    """Every PNG of ``hr_folder`` degraded (:func:`degrade`) into ``out_folder`` (existing files kept)."""
    os.makedirs(out_folder, exist_ok=True)
    for index, file in enumerate(sorted(f for f in os.listdir(hr_folder) if f.endswith('.png'))):
        path = osp.join(out_folder, file)
        if not osp.isfile(path):
            cv2.imwrite(path, degrade(cv2.imread(osp.join(hr_folder, file)), kind, strength, seed=index))
    return out_folder


def content_tiles(img: np.ndarray, size: int = TILE, min_std: float = MIN_TILE_STD) -> int:
    """How many non-overlapping ``size`` px tiles of ``img`` have content (grey-level std >= ``min_std``)."""
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return sum(gray[y:y + size, x:x + size].std() >= min_std
               for y in range(0, img.shape[0] - size + 1, size) for x in range(0, img.shape[1] - size + 1, size))
