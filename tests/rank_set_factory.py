"""Tiny synthetic rank dataset splits for the tests (a helper module, not a test file).

``make_rank_set`` writes one split in the format of docs/rank_dataset.md with the project's own
writers (``write_manifest``, ``write_labels``) and BasicSR's own LMDB writer (``LmdbMaker``), or
``cv2.imwrite`` for folder storage. The images are deterministic functions of
(key, level, size, seed, mode), exposed as ``synthetic_image`` so tests can compare pixels.

Modes:
    ``'blur'`` (default): one random texture per key; the worse a level (earlier in ``levels``),
        the stronger its Gaussian blur, so a Ranker can learn to order the levels.
    ``'offset'``: one random (unsmoothed) texture per key; level ``i`` adds ``i * step`` to every
        pixel, so ``img_a - img_b`` of two levels is a constant image: any misaligned crop or
        differing flip/rotation between the two would break that constancy.

Default labels (NIQE-like when ``higher_is_better`` is False): a per-level offset plus small
per-key noise so the levels have a consistent order: the first level (``srres``) gets the highest
label (worst NIQE), the last (``esrgan``) the lowest. With ``higher_is_better=True`` (Ma-like) the
order is reversed: the last level gets the highest label.
"""
import os
import os.path as osp
import zlib
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ranksrgan_plugin.data.rank_dataset_format import LABELS_FILE, level_path, write_labels, write_manifest

DEFAULT_KEYS = ('k000', 'k001', 'k002', 'k003')
DEFAULT_LEVELS = ('srres', 'srgan', 'esrgan')
LABEL_STEP = 2.0
LABEL_NOISE = 0.3

Size = Union[int, Tuple[int, int]]


def _hw(size: Size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on the seed and the names (stable across processes)."""
    return np.random.default_rng([seed] + [zlib.crc32(name.encode('utf-8')) for name in names])


def synthetic_image(key: str, level: str, levels: Sequence[str], size: Size = 40, seed: int = 0,
                    mode: str = 'blur') -> np.ndarray:
    """The uint8 BGR image (h, w, 3) that ``make_rank_set`` stores for (key, level)."""
    height, width = _hw(size)
    index, num_levels = list(levels).index(level), len(levels)
    if mode == 'offset':
        step = 80 // max(num_levels - 1, 1)
        base = _rng(seed, 'offset', key).integers(40, 161, size=(height, width, 3))
        return (base + index * step).astype(np.uint8)
    if mode != 'blur':
        raise ValueError(f'Unknown synthetic image mode {mode!r}.')
    texture = _rng(seed, 'blur', key).uniform(0, 255, size=(height, width, 3)).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 0.7)
    sigma = 0.3 + 1.2 * (num_levels - 1 - index)  # first level blurred most, last nearly sharp
    image = cv2.GaussianBlur(texture, (0, 0), sigma)
    # stretch the contrast back so the levels differ in sharpness, not in brightness
    image = (image - image.mean()) * (texture.std() / max(float(image.std()), 1e-3)) + texture.mean()
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def default_labels(keys: Sequence[str], levels: Sequence[str], seed: int = 0,
                   higher_is_better: bool = False) -> Dict[Tuple[str, str], float]:
    """Per-level offset plus per-key noise; consistent level order (see the module docstring)."""
    labels = {}
    num_levels = len(levels)
    for key in keys:
        noise = _rng(seed, 'labels', key).uniform(-LABEL_NOISE, LABEL_NOISE, size=num_levels)
        for index, level in enumerate(levels):
            rank = index if higher_is_better else num_levels - 1 - index
            labels[(key, level)] = round(3.0 + LABEL_STEP * rank + float(noise[index]), 6)
    return labels


def make_rank_set(root: Union[str, 'os.PathLike[str]'],
                  storage: str = 'lmdb',
                  keys: Sequence[str] = DEFAULT_KEYS,
                  levels: Sequence[str] = DEFAULT_LEVELS,
                  size: Size = 40,
                  seed: int = 0,
                  labels: Optional[Mapping[Tuple[str, str], float]] = None,
                  higher_is_better: bool = False,
                  metric: str = 'niqe',
                  mode: str = 'blur',
                  split: Optional[str] = None,
                  skip: Iterable[Tuple[str, str]] = (),
                  shape_overrides: Optional[Mapping[Tuple[str, str], Size]] = None) -> str:
    """Write a tiny rank dataset split at ``root`` (created; must not hold level stores yet).

    Args:
        root: The split folder.
        storage: 'lmdb' (BasicSR LMDB per level) or 'folder' (``<level>/<key>.png``).
        keys, levels: Patch keys and level names (worst level first, by convention).
        size: Patch side, or (height, width).
        seed: Seed of the images and default labels.
        labels: ``{(key, level): label}`` to write instead of the default labels (written for
            exactly these entries: a partial mapping makes a split with missing labels).
        higher_is_better, metric: Recorded in the manifest (``higher_is_better`` also sets the
            default labels' direction).
        mode: 'blur' or 'offset' (see the module docstring).
        split: The manifest's split; default: the folder name if it is 'train' or 'val', else 'train'.
        skip: (key, level) items whose image is not written (to build broken splits).
        shape_overrides: ``{(key, level): size}`` items written at another size.

    Returns:
        ``root`` as a str.
    """
    root = os.fspath(root)
    if split is None:
        split = osp.basename(osp.normpath(root)) if osp.basename(osp.normpath(root)) in ('train', 'val') else 'train'
    keys, levels = list(keys), list(levels)
    skip = set(skip)
    shape_overrides = dict(shape_overrides or {})
    os.makedirs(root, exist_ok=True)
    for level in levels:
        items = []
        for key in keys:
            if (key, level) in skip:
                continue
            image = synthetic_image(key, level, levels, shape_overrides.get((key, level), size), seed, mode)
            items.append((key, image))
        _write_level(level_path(root, level, storage), storage, items)
    if labels is None:
        labels = default_labels(keys, levels, seed, higher_is_better)
    order = {(key, level): (i, j) for i, key in enumerate(keys) for j, level in enumerate(levels)}
    rows = sorted(labels.items(), key=lambda item: order.get(item[0], (len(keys), len(levels))))
    write_labels(osp.join(root, LABELS_FILE), [(key, level, float(value)) for (key, level), value in rows])
    height, width = _hw(size)
    write_manifest(root, {
        'levels': levels,
        'storage': storage,
        'metric': metric,
        'higher_is_better': higher_is_better,
        'split': split,
        'patch_size': max(height, width),
        'num_keys': len(keys),
    })
    return root


def _write_level(path: str, storage: str, items: Sequence[Tuple[str, np.ndarray]]) -> None:
    if storage == 'lmdb':
        from basicsr.utils.lmdb_util import LmdbMaker

        maker = LmdbMaker(path, map_size=1 << 26)
        for key, image in items:
            ok, encoded = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            assert ok, f'cannot encode {key}'
            maker.put(encoded.tobytes(), key, image.shape)
        maker.close()
    elif storage == 'folder':
        os.makedirs(path, exist_ok=True)
        for key, image in items:
            assert cv2.imwrite(osp.join(path, f'{key}.png'), image), f'cannot write {key}'
    else:
        raise ValueError(f'Unknown storage {storage!r}.')
