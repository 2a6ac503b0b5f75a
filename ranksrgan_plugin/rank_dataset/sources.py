"""The source images of a rank dataset (an HR / LR folder or BasicSR LMDB), their LMDB key stems, and the split
(train / val) of each image or patch location."""
import math
import os.path as osp
import random
import re
from typing import Dict, Iterable, List, Sequence

import cv2
import numpy as np
from basicsr.utils import FileClient, imfrombytes

from ..data.rank_dataset_format import IMAGE_EXTENSIONS, list_folder_images, read_lmdb_meta_info
from .options import RankDatasetBuildError
from .patch_selection import stable_seed


class ImageSource:
    """Images of a folder or a BasicSR LMDB, addressed by stem (file name without extension)."""

    def __init__(self, path: str, what: str = 'HR') -> None:
        self.path, self.what = path, what
        if path.rstrip('/').endswith('.lmdb'):
            if not osp.isdir(path):
                raise RankDatasetBuildError(f'{what} LMDB {path} does not exist.')
            self._stems = sorted(read_lmdb_meta_info(path))
            self._client = FileClient('lmdb', db_paths=[path], client_keys=['default'])
            self._files = None
        else:
            if not osp.isdir(path):
                raise RankDatasetBuildError(f'{what} folder {path} does not exist.')
            self._files = list_folder_images(path)
            self._stems = sorted(self._files)
        if not self._stems:
            raise RankDatasetBuildError(f'{what} input {path} has no images (extensions {IMAGE_EXTENSIONS}).')

    def stems(self) -> List[str]:
        """The image stems, sorted."""
        return list(self._stems)

    def location(self, stem: str) -> str:
        """Where the image of ``stem`` is (file path, or ``<lmdb>:<key>``), for messages."""
        return self._files[stem] if self._files is not None else f'{self.path}:{stem}'

    def read(self, stem: str) -> np.ndarray:
        """BGR uint8 image; :class:`RankDatasetBuildError` naming the file if unreadable."""
        if self._files is not None:
            if stem not in self._files:
                raise RankDatasetBuildError(f'{self.what} image for {stem!r} not found in {self.path}.')
            img = cv2.imread(self._files[stem], cv2.IMREAD_COLOR)
        else:
            content = self._client.get(stem, 'default')
            img = imfrombytes(content) if content else None
        if img is None:
            raise RankDatasetBuildError(f'Cannot read {self.what} image {self.location(stem)}.')
        return img


def assign_splits(stems: Sequence[str], val_fraction: float, seed: int) -> Dict[str, str]:
    """Seeded split by source image: ``ceil(val_fraction * n)`` images (at most n - 1) go to val."""
    order = sorted(stems)
    random.Random(seed).shuffle(order)
    num_val = min(math.ceil(val_fraction * len(order)), len(order) - 1) if val_fraction > 0 else 0
    val = set(order[:num_val])
    return {stem: 'val' if stem in val else 'train' for stem in stems}


def patch_split(key: str, val_fraction: float, seed: int) -> str:
    """Split of one patch location: 'val' with probability ``val_fraction``, from a hash of ``seed`` and ``key``.

    Depends on nothing else, so shards, resumed and uninterrupted builds agree.
    """
    return 'val' if stable_seed(seed, 'val', key) < val_fraction * 2.0**64 else 'train'


def key_stem(stem: str) -> str:
    """A source image stem made safe for LMDB keys (letters, digits, '_' and '-')."""
    return re.sub(r'[^A-Za-z0-9_\-]', '-', stem)


def check_unique_key_stems(stems: Iterable[str], where: str) -> None:
    """Refuse two image stems that :func:`key_stem` maps to the same key prefix."""
    seen: Dict[str, str] = {}
    for stem in stems:
        safe = key_stem(stem)
        if seen.setdefault(safe, stem) != stem:
            raise RankDatasetBuildError(f'Images {seen[safe]!r} and {stem!r} in {where} map to the same key '
                                        f'prefix {safe!r}; rename one of them.')
