"""Pairs of SR patches with metric labels: the data the Ranker learns from."""
import os.path as osp
import random
from copy import deepcopy
from typing import Any, Dict, List, Optional, Tuple

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from .rank_dataset_format import (
    LABELS_FILE,
    MANIFEST_FILE,
    LabelTable,
    RankDatasetError,
    level_path,
    list_folder_images,
    read_image_shape,
    read_labels,
    read_lmdb_meta_info,
    read_manifest,
)

_BACKEND_STORAGE = {'lmdb': 'lmdb', 'disk': 'folder'}
_STORAGE_BACKEND = {storage: backend for backend, storage in _BACKEND_STORAGE.items()}


PAIR_ORDERS = ('better_first', 'random')


@DATASET_REGISTRY.register()
class RankPairDataset(data.Dataset):
    """The paper's *rank dataset*: aligned patches of N >= 2 SR *levels* with perceptual labels.

    Reads one split written in the format of docs/rank_dataset.md (LMDB through BasicSR's
    FileClient, or plain folders). In the ``train`` phase an item is two different levels of one
    key, drawn uniformly, with the same random crop / flip / rotation applied to both:
    ``img_a, img_b`` (RGB CHW in [0, 1]), ``label_a, label_b``, ``key``, ``level_a, level_b``. In
    any other phase every (key, level) is one item: ``img``, ``label``, ``key``, ``level``.

    Labels are the metric values; for a higher-is-better metric they are negated so that the
    Ranker score always grows with the label (see ranksrgan_plugin/losses/rank_loss.py).

    Options (BasicSR dataset options):
        dataroot (str): The split folder.
        io_backend (dict): ``type: lmdb`` or ``type: disk``. Default: the manifest's storage.
        levels (list[str]): Levels to use, >= 2. Default: the manifest's levels.
        labels_file (str): Default: ``<dataroot>/labels.txt``.
        higher_is_better (bool): Default: the manifest's value, else False.
        gt_size (int): Training crop size. Default: None (whole patches).
        use_hflip (bool), use_rot (bool): Training augmentation. Default: False.
        pair_order (str): ``better_first`` (default, the original's ``Rank_IMIM_Pair_dataset.py``: one of the
            level pairs uniformly, side A the better level, i.e. the one listed later, the levels being
            listed worst first as the builder writes them: SRResNet, SRGAN, ESRGAN) or ``random`` (either
            order). With one forward pass per side (``pair_forward: separate``) each side's BatchNorm sees
            another mix of levels, so the order changes the training.
        phase (str): Set by BasicSR: 'train' gives pairs, anything else single items.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.root = opt['dataroot']
        check_split_root(self.root, opt.get('name', 'RankPairDataset'))
        manifest = read_manifest(self.root) or {}
        self.is_train = opt.get('phase') == 'train'
        self.pair_order = opt.get('pair_order') or 'better_first'
        if self.pair_order not in PAIR_ORDERS:
            raise RankDatasetError(f"Dataset {opt.get('name')!r}: pair_order must be one of {PAIR_ORDERS}, got "
                                   f'{self.pair_order!r}.')
        self.io_backend_opt = deepcopy(opt.get('io_backend') or {'type': _storage_backend(manifest, self.root)})
        self.storage = _BACKEND_STORAGE.get(self.io_backend_opt['type'])
        if self.storage is None:
            raise RankDatasetError(f"io_backend type {self.io_backend_opt['type']!r} is not supported by "
                                   f'RankPairDataset ({self.root}); use lmdb or disk.')
        self.levels: List[str] = list(opt.get('levels') or manifest.get('levels') or [])
        if len(self.levels) < 2 or len(set(self.levels)) != len(self.levels):
            raise RankDatasetError(f'RankPairDataset needs >= 2 distinct levels, got {self.levels} '
                                   f'(option `levels` or {self.root}/manifest.json).')
        self.higher_is_better = bool(opt.get('higher_is_better', manifest.get('higher_is_better', False)))
        self.labels_file = opt.get('labels_file') or f'{self.root}/{LABELS_FILE}'
        self.keys, self.paths = self._index_levels()
        self.labels = self._select_labels(read_labels(self.labels_file))
        self.file_client: Optional[FileClient] = None

    def _index_levels(self) -> Tuple[List[str], Dict[str, Dict[str, str]]]:
        """Keys shared by every level and, for folders, their file paths; checks sizes agree."""
        shapes_by_level, paths = {}, {}
        for level in self.levels:
            path = level_path(self.root, level, self.storage)
            shapes_by_level[level], paths[level] = _index_level(path, level, self.storage)
        keys = _shared_keys(shapes_by_level, self.root)
        for key in keys:
            sizes = {level: shapes_by_level[level][key][:2] for level in self.levels}
            if len(set(sizes.values())) > 1:
                raise RankDatasetError(f'Key {key!r} has different sizes across levels in {self.root}: {sizes}')
        return keys, paths

    def _select_labels(self, table: LabelTable) -> Dict[Tuple[str, str], float]:
        sign = -1.0 if self.higher_is_better else 1.0
        labels = {}
        for key in self.keys:
            for level in self.levels:
                if (key, level) not in table:
                    raise RankDatasetError(f'No label for key {key!r}, level {level!r} in {self.labels_file}.')
                labels[(key, level)] = sign * table[(key, level)]
        unknown = sorted({key for key, level in table if level in self.levels} - set(self.keys))
        if unknown:
            raise RankDatasetError(f'{self.labels_file} labels {len(unknown)} keys that are not in the level '
                                   f'images of {self.root}, e.g. {unknown[:3]}.')
        return labels

    def __len__(self) -> int:
        return len(self.keys) if self.is_train else len(self.keys) * len(self.levels)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if self.file_client is None:
            self.file_client = self._make_file_client()
        if self.is_train:
            return self._pair_item(self.keys[index])
        key, level = self.keys[index // len(self.levels)], self.levels[index % len(self.levels)]
        img = img2tensor(self._load(key, level), bgr2rgb=True, float32=True)
        return {'img': img, 'label': self.labels[(key, level)], 'key': key, 'level': level}

    def _pair_item(self, key: str) -> Dict[str, Any]:
        if self.pair_order == 'random':
            level_a, level_b = random.sample(self.levels, 2)
        else:  # the original's: an unordered pair uniformly, the better (later-listed) level first
            worse, better = sorted(random.sample(range(len(self.levels)), 2))
            level_a, level_b = self.levels[better], self.levels[worse]
        img_a, img_b = self._load(key, level_a), self._load(key, level_b)
        if self.opt.get('gt_size'):
            img_a, img_b = paired_random_crop(img_a, img_b, self.opt['gt_size'], 1, key)
        img_a, img_b = augment([img_a, img_b], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        img_a, img_b = img2tensor([img_a, img_b], bgr2rgb=True, float32=True)
        return {
            'img_a': img_a, 'img_b': img_b, 'key': key, 'level_a': level_a, 'level_b': level_b,
            'label_a': self.labels[(key, level_a)], 'label_b': self.labels[(key, level_b)],
        }

    def _make_file_client(self) -> FileClient:
        backend_opt = deepcopy(self.io_backend_opt)
        backend_type = backend_opt.pop('type')
        if backend_type == 'lmdb':
            backend_opt['db_paths'] = [level_path(self.root, level, 'lmdb') for level in self.levels]
            backend_opt['client_keys'] = list(self.levels)
        return FileClient(backend_type, **backend_opt)

    def _load(self, key: str, level: str):
        """One patch as BGR HWC float32 in [0, 1]."""
        if self.storage == 'lmdb':
            where = level_path(self.root, level, 'lmdb')
            img_bytes = self.file_client.get(key, level)
        else:
            where = self.paths[level][key]
            img_bytes = self.file_client.get(where)
        if img_bytes is None:
            raise RankDatasetError(f'Key {key!r} of level {level!r} could not be read from {self.root}.')
        try:
            return imfrombytes(img_bytes, float32=True)
        except AttributeError:  # BasicSR's imfrombytes: cv2.imdecode gave None
            raise RankDatasetError(
                f"Dataset {self.opt.get('name')!r}: key {key!r} of level {level!r} ({where}) is not a decodable "
                'image (a corrupt or truncated file): rebuild the rank dataset, or remove the key from '
                f'{self.labels_file}.') from None


def check_split_root(root: str, name: str) -> None:
    """``root`` must be an existing split folder (not a missing path, not a build's top folder)."""
    if not osp.isdir(root):
        raise RankDatasetError(f'Dataset {name!r}: dataroot {root} does not exist. It is one split of a rank dataset '
                               '(tools/make_rank_dataset.py writes <output>/train and <output>/val).')
    splits = [split for split in ('train', 'val') if osp.isfile(osp.join(root, split, MANIFEST_FILE))]
    if splits and not osp.isfile(osp.join(root, LABELS_FILE)):
        raise RankDatasetError(f'Dataset {name!r}: dataroot {root} is a rank-dataset build, not one of its splits: '
                               'set dataroot to ' + ' or '.join(osp.join(root, split) for split in splits) + '.')


def _storage_backend(manifest: Dict[str, Any], root: str) -> str:
    storage = manifest.get('storage')
    if storage is None:
        raise RankDatasetError(f'No io_backend option and no "storage" in {root}/manifest.json: '
                               'set io_backend: {type: lmdb} or {type: disk}.')
    if storage not in _STORAGE_BACKEND:
        raise RankDatasetError(f'{root}/manifest.json has storage {storage!r}; expected one of '
                               f'{sorted(_STORAGE_BACKEND)}.')
    return _STORAGE_BACKEND[storage]


def _index_level(path: str, level: str, storage: str):
    """``({key: (h, w, c)}, {key: file path})`` of one level's image store."""
    if not osp.isdir(path):
        other = 'folder' if storage == 'lmdb' else 'lmdb'
        other_path = level_path(osp.dirname(path), level, other)
        if osp.isdir(other_path):
            backend = _STORAGE_BACKEND[other]
            raise RankDatasetError(f'Level {level!r} is stored as {other} ({other_path}), but io_backend type is '
                                   f'{_STORAGE_BACKEND[storage]!r}: set io_backend: {{type: {backend}}} (or leave '
                                   "io_backend out: the split's manifest.json names its storage).")
        raise RankDatasetError(f'Level {level!r} is missing: no {"LMDB" if storage == "lmdb" else "folder"} at {path}.')
    if storage == 'lmdb':
        return read_lmdb_meta_info(path), {}
    files = list_folder_images(path)
    return {key: read_image_shape(file) for key, file in files.items()}, files


def _shared_keys(shapes_by_level: Dict[str, Dict[str, Any]], root: str) -> List[str]:
    all_keys = set().union(*shapes_by_level.values())
    for level, shapes in shapes_by_level.items():
        missing = sorted(all_keys - set(shapes))
        if missing:
            raise RankDatasetError(f'Level {level!r} in {root} lacks {len(missing)} keys that other levels have, '
                                   f'e.g. {missing[:3]}.')
    if not all_keys:
        raise RankDatasetError(f'The rank dataset at {root} has no images.')
    return sorted(all_keys)
