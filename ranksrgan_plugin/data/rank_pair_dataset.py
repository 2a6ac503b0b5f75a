"""Pairs of SR patches with metric labels: the data the Ranker learns from."""
import os.path as osp
import random
from copy import deepcopy
from itertools import combinations
from typing import Any, Dict, List, Mapping, Optional, Tuple

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, get_root_logger, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from ..utils.option_keys import refuse_unknown_keys
from .rank_dataset_format import (
    LABELS_FILE,
    MANIFEST_FILE,
    LabelTable,
    RankDatasetError,
    level_path,
    list_folder_images,
    rank_set_record,
    read_image_shape,
    read_labels,
    read_lmdb_meta_info,
    read_manifest,
)

_BACKEND_STORAGE = {'lmdb': 'lmdb', 'disk': 'folder'}
_STORAGE_BACKEND = {storage: backend for backend, storage in _BACKEND_STORAGE.items()}


PAIR_ORDERS = ('better_first', 'random')
DATASET_OPTIONS = ('dataroot', 'io_backend', 'levels', 'labels_file', 'higher_is_better', 'gt_size', 'use_hflip',
                   'use_rot', 'pair_order')
# Keys BasicSR 1.4.2 itself adds to or reads from every dataset's options (utils/options.py, data/__init__.py,
# train.py); ``use_shuffle`` is read by no 1.4.2 code but is in BasicSR's own option files.
BASICSR_DATASET_KEYS = ('name', 'type', 'phase', 'scale', 'dataroot_gt', 'dataroot_lq', 'use_shuffle',
                        'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode',
                        'num_prefetch_queue', 'pin_memory', 'persistent_workers')


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

    Refused before any item is read, each naming the option or file: an unknown option key (with the
    closest valid name; BasicSR's own dataset keys are known), a label that is not a finite number
    (file and line), a split whose labels carry no order (every key's levels equal), and
    ``higher_is_better`` contradicting the split's manifest (which records the metric and its
    direction; a split without a manifest, or read with another ``labels_file``, takes the option as
    given). Pairs with equal labels are counted and logged: they carry no order, so the rank loss and
    the pair accuracy leave them out.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.where = _where(opt)
        refuse_unknown_keys(opt, DATASET_OPTIONS + BASICSR_DATASET_KEYS, self.where, error=RankDatasetError)
        if not opt.get('dataroot'):
            raise RankDatasetError(f'{self.where}: option `dataroot` (the split folder, e.g. '
                                   'datasets/rank_DF2K_niqe/train) is required.')
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
        self.labels_file = opt.get('labels_file') or f'{self.root}/{LABELS_FILE}'
        self.higher_is_better = self._direction(opt.get('higher_is_better'))
        self.keys, self.paths = self._index_levels()
        self._check_gt_size(opt.get('gt_size'))
        self.labels = self._select_labels(read_labels(self.labels_file))
        self.num_ordered_pairs, self.num_tied_pairs = self._check_order()
        self.file_client: Optional[FileClient] = None

    def _direction(self, option: Any) -> bool:
        """``higher_is_better``: the option, checked against the split's manifest, else the manifest's, else False."""
        record = rank_set_record(self.root)
        if option is None:
            return record['higher_is_better'] if record else False
        if not isinstance(option, bool):
            raise RankDatasetError(f'{self.where}: option `higher_is_better` is true or false, got {option!r}.')
        own_labels = osp.abspath(self.labels_file) == osp.abspath(osp.join(self.root, LABELS_FILE))
        if record is not None and own_labels and option != record['higher_is_better']:
            metric = record['metric'] or 'its metric'
            direction = 'higher' if record['higher_is_better'] else 'lower'
            raise RankDatasetError(
                f"{self.where}: option `higher_is_better: {str(option).lower()}` contradicts {record['manifest']}, "
                f"whose labels are {metric} ({direction} is better, higher_is_better: "
                f"{str(record['higher_is_better']).lower()}): a Ranker trained so would rank the levels backwards. "
                'Remove the option (the manifest sets the direction) or use a split labelled with the metric '
                'you mean.')
        return option

    def _check_gt_size(self, gt_size: Optional[int]) -> None:
        """A training crop must fit in every patch (BasicSR's crop would fail on the first batch)."""
        if not gt_size or not self.is_train:
            return
        smallest = min(min(shape[:2]) for shape in self.shapes.values())
        if gt_size > smallest:
            raise RankDatasetError(f'{self.where}: option `gt_size` {gt_size} is larger than the smallest patch of '
                                   f'{self.root} ({smallest} pixels): use gt_size <= {smallest}, or leave it out '
                                   '(whole patches).')

    def _check_order(self) -> Tuple[int, int]:
        """(ordered, tied) level pairs over the keys; a split with no ordered pair is refused, ties are logged."""
        ordered = tied = 0
        for key in self.keys:
            for level_a, level_b in combinations(self.levels, 2):
                if self.labels[(key, level_a)] == self.labels[(key, level_b)]:
                    tied += 1
                else:
                    ordered += 1
        if not ordered:
            raise RankDatasetError(
                f'{self.labels_file}: within every one of the {len(self.keys)} keys the levels {self.levels} have '
                'equal labels, so the split carries no order: a Ranker would learn nothing from it (rank loss 0) and '
                'its SROCC / pair accuracy would be undefined. Label the levels with a metric that tells them apart '
                '(tools/make_rank_dataset.py), or check the labels file.')
        if tied:
            get_root_logger().warning(
                f'{self.where}: {tied} of {ordered + tied} level pairs in {self.labels_file} have equal labels; they '
                'carry no order and are left out of the rank loss and the pair accuracy.')
        return ordered, tied

    def _index_levels(self) -> Tuple[List[str], Dict[str, Dict[str, str]]]:
        """Keys shared by every level and, for folders, their file paths; checks sizes agree (``self.shapes``)."""
        shapes_by_level, paths = {}, {}
        for level in self.levels:
            path = level_path(self.root, level, self.storage)
            shapes_by_level[level], paths[level] = _index_level(path, level, self.storage)
        keys = _shared_keys(shapes_by_level, self.root)
        for key in keys:
            sizes = {level: shapes_by_level[level][key][:2] for level in self.levels}
            if len(set(sizes.values())) > 1:
                raise RankDatasetError(f'Key {key!r} has different sizes across levels in {self.root}: {sizes}')
        self.shapes = {key: shapes_by_level[self.levels[0]][key] for key in keys}
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


def _where(opt: Mapping[str, Any]) -> str:
    """How messages name the options block: ``Dataset 'rank_DF2K_niqe' (datasets.train)`` for BasicSR's options
    (they have a ``type``), else ``Dataset '<name>'``."""
    name = opt.get('name', 'RankPairDataset')
    if opt.get('type') and opt.get('phase'):
        return f"Dataset {name!r} (datasets.{opt['phase']})"
    return f'Dataset {name!r}'


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
