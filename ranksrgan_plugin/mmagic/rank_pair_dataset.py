"""The rank dataset for mmengine: the BasicSR side's RankPairDataset behind mmengine's dataset interface."""
import inspect
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmagic.registry import DATASETS
from torch.utils.data import Dataset

from ..data.rank_dataset_format import RankDatasetError, read_manifest
from ..data.rank_pair_dataset import RankPairDataset as BasicSRRankPairDataset
from ..utils.option_keys import refuse_unknown_keys


@DATASETS.register_module()
class RankPairDataset(Dataset):
    """The paper's *rank dataset* (docs/rank_dataset.md, LMDB or folders) for MMagic's Runner.

    Indexing, validation of the split, label signs, loading and the crop/flip/rotation of pairs
    are the BasicSR side's :class:`ranksrgan_plugin.data.RankPairDataset`, built inside (one
    definition of the format). Items, RGB CHW float tensors in [0, 1], are the same too: in
    training (``test_mode=False``) two different levels of one key (``img_a``, ``img_b``,
    ``label_a``, ``label_b``, ``key``, ``level_a``, ``level_b``); in validation every (key, level)
    (``img``, ``label``, ``key``, ``level``). Use ``collate_fn=dict(type='default_collate')``.

    Args:
        data_root (str): The split folder (e.g. ``datasets/rank_DF2K_niqe/train``). Required.
        test_mode (bool): Single (key, level) items instead of pairs. Default: False.
        io_backend (dict, optional): ``dict(type='lmdb')`` or ``dict(type='disk')``. Default: the manifest's storage.
        levels (list[str], optional): Levels to use (>= 2). Default: the manifest's.
        labels_file (str, optional): Default: ``<data_root>/labels.txt``.
        higher_is_better (bool, optional): Negate the labels. Default: the manifest's value.
        gt_size (int, optional): Training crop, the same for both patches of a pair. Default: whole patches.
        use_hflip (bool): Random flips in training. Default: False.
        use_rot (bool): Random 90-degree rotations in training. Default: False.
        pair_order (str): ``better_first`` (the original's) or ``random``; see the BasicSR side's class.

    Any other keyword is refused naming the closest valid one; labels and direction are checked as the
    BasicSR side's class does (non-finite labels, a split without order, ``higher_is_better``
    contradicting the split's manifest).
    """

    def __init__(self, data_root: Optional[str] = None, test_mode: bool = False,
                 io_backend: Optional[Dict[str, Any]] = None, levels: Optional[Sequence[str]] = None,
                 labels_file: Optional[str] = None,
                 higher_is_better: Optional[bool] = None, gt_size: Optional[int] = None, use_hflip: bool = False,
                 use_rot: bool = False, pair_order: str = 'better_first', **unknown: Any) -> None:
        super().__init__()
        where = f"{'val' if test_mode else 'train'}_dataloader.dataset"
        known = [name for name, parameter in inspect.signature(type(self)).parameters.items()
                 if parameter.kind is not parameter.VAR_KEYWORD]
        refuse_unknown_keys(unknown, known, f'{where} (RankPairDataset, data_root {data_root!r})',
                            error=RankDatasetError)
        if not data_root:
            raise RankDatasetError(f'{where} (RankPairDataset): `data_root` (the split folder, e.g. '
                                   'datasets/rank_DF2K_niqe/train) is required.')
        self.data_root = data_root
        self.test_mode = test_mode
        opt = {'name': where, 'dataroot': data_root, 'phase': 'val' if test_mode else 'train', 'io_backend': io_backend,
               'levels': list(levels) if levels else None, 'labels_file': labels_file, 'gt_size': gt_size,
               'use_hflip': use_hflip, 'use_rot': use_rot, 'pair_order': pair_order}
        if higher_is_better is not None:
            opt['higher_is_better'] = higher_is_better
        self.split = BasicSRRankPairDataset(opt)
        self._manifest = read_manifest(data_root) or {}

    @property
    def metainfo(self) -> Dict[str, Any]:
        """The split's description (shown to evaluators and visualisers by mmengine)."""
        return {'dataset_type': 'rank_dataset', 'task_name': 'ranker', 'data_root': self.data_root,
                'levels': list(self.split.levels), 'higher_is_better': self.split.higher_is_better,
                'metric': self._manifest.get('metric'), 'num_keys': len(self.split.keys)}

    @property
    def keys(self) -> List[str]:
        """The patch locations of the split."""
        return self.split.keys

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        item = self.split[index]
        for name in ('label', 'label_a', 'label_b'):
            if name in item:
                item[name] = torch.tensor(item[name], dtype=torch.float32)
        return item
