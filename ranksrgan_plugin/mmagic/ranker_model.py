"""The model that trains the Ranker in MMagic / mmengine (paper Sec. 3.2, "Ranker")."""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmagic.registry import MODELS
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel

from ..archs.ghost_batchnorm import check_group_size, group_batchnorms
from ..archs.ranker_arch import PAIR_FORWARDS, score_pairs
from ..losses.loss_options import check_ranker_loss_options
from ..metrics.rank_metrics import batch_pair_accuracy
from ..rank_content.ranker_record import RECORD_KEY, ranker_record
from ..utils.built_options import check_built_options, init_keywords
from ..utils.option_keys import refuse_unknown_keys

DEFAULT_RANK_LOSS = dict(type='RankLoss', margin=0.5)


@MODELS.register_module()
class RankerModel(BaseModel):
    """Trains the *Ranker* on pairs of SR levels with the *rank loss* (or the "regression" Ranker loss).

    Batches come from :class:`~.rank_pair_dataset.RankPairDataset` collated by ``default_collate``:
    pairs (``img_a``, ``img_b``, ``label_a``, ``label_b``) in training, single items (``img``,
    ``label``, ``key``, ``level``) in validation. ``forward(mode='loss')`` gives ``loss_rank`` and
    ``pair_acc`` (share of the batch's pairs the scores order as the labels; logged, not a loss),
    so mmengine's own ``train_step`` and DDP wrappers apply unchanged. ``forward(mode='predict')``
    gives one dict per item (``score``, ``label``, ``key``, ``level``) for the whole-split metrics
    ``SROCC`` and ``PairAccuracy``. The checkpoint's weights are ``ranker.*``; RankSRGAN loads them
    directly, ``export_ranker_for_basicsr`` writes them for the BasicSR side.

    Args:
        ranker (dict): Config of the Ranker, e.g. ``dict(type='RankerVGG', depth=12)``.
        rank_loss (dict): ``RankLoss`` (margin 0.5, the paper) or ``RankRegressionLoss``.
        pair_forward (str): ``'separate'`` (the original's: one forward pass per side of the pairs,
            BatchNorm statistics per side) or ``'joint'`` (one pass over both sides). Default: 'separate'.
        batchnorm_group (int, optional): The images per BatchNorm statistics (the original's per-GPU share of a
            side: 8 of 16; the paper configs set 8). Default: None, each process's batch
            (:mod:`ranksrgan_plugin.archs.ghost_batchnorm`).
        data_preprocessor (dict, optional): Default: ``BaseDataPreprocessor`` (moves data to the device).
        init_cfg (dict, optional): mmengine weight initialisation config.

    An unknown ``model``, ``model.ranker`` or ``model.rank_loss`` key is refused with its closest valid name.
    In training the model records its training split (``train_dataloader.dataset``: metric, direction,
    manifest digest; :mod:`ranksrgan_plugin.rank_content.ranker_record`) in the Runner's message hub, so every
    checkpoint carries it (``message_hub.runtime_info.ranker_record``) for RankSRGAN to check its
    rank-content loss against.
    """

    def __init__(self, ranker: Dict[str, Any], rank_loss: Optional[Dict[str, Any]] = None,
                 pair_forward: str = 'separate', batchnorm_group: Optional[int] = None,
                 data_preprocessor: Optional[Dict[str, Any]] = None,
                 init_cfg: Optional[Dict[str, Any]] = None, **unknown: Any) -> None:
        refuse_unknown_keys(unknown, init_keywords(RankerModel) or (), f'model ({type(self).__name__})')
        check_built_options(ranker, 'model.ranker', MODELS, 'model', 'RankerVGG')
        check_ranker_loss_options(rank_loss or DEFAULT_RANK_LOSS, 'model.rank_loss', MODELS,
                                  'train_dataloader.dataset.higher_is_better')
        check_group_size(batchnorm_group, 'model.batchnorm_group')
        super().__init__(data_preprocessor=data_preprocessor or dict(type='BaseDataPreprocessor'), init_cfg=init_cfg)
        if pair_forward not in PAIR_FORWARDS:
            raise ValueError(f'RankerModel pair_forward must be one of {PAIR_FORWARDS}, got {pair_forward!r}.')
        self.ranker = MODELS.build(ranker)
        print_log(group_batchnorms({'ranker': self.ranker}, batchnorm_group, 'model.batchnorm_group'), logger='current')
        self.rank_loss = MODELS.build(rank_loss or DEFAULT_RANK_LOSS)
        self.pair_forward = pair_forward
        self._recorded_split: Optional[str] = None

    def forward(self, img: Optional[torch.Tensor] = None, mode: str = 'tensor',
                **batch: Any) -> Union[torch.Tensor, Dict[str, torch.Tensor], List[Dict[str, Any]]]:
        """``loss``: the pair losses; ``predict``: per-item outputs; ``tensor``: scores (N,) of ``img``."""
        if mode == 'loss':
            return self.loss(batch['img_a'], batch['img_b'], batch['label_a'], batch['label_b'])
        scores = self.ranker(img).reshape(-1)
        if mode == 'predict':
            return self.predict(scores, batch['label'], batch['key'], batch['level'])
        if mode == 'tensor':
            return scores
        raise ValueError(f'RankerModel.forward: unknown mode {mode!r}; use loss, predict or tensor.')

    def loss(self, img_a: torch.Tensor, img_b: torch.Tensor, label_a: torch.Tensor,
             label_b: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Rank loss of a batch of pairs, plus the batch's pair accuracy (not a loss: no 'loss' in its name)."""
        self.record_training_split()
        score_a, score_b = score_pairs(self.ranker, img_a, img_b, self.pair_forward)
        label_a, label_b = label_a.to(score_a), label_b.to(score_a)
        return {'loss_rank': self.rank_loss(score_a, score_b, label_a, label_b),
                'pair_acc': batch_pair_accuracy(score_a, score_b, label_a, label_b)}

    def record_training_split(self) -> None:
        """Put the training split's record in the Runner's message hub (saved in every checkpoint), once per split.

        The split is the one mmengine's ``RuntimeInfoHook`` announces (``dataset_meta`` of
        ``train_dataloader.dataset``: its ``data_root`` and the ``higher_is_better`` it trains with).
        """
        hub = MessageHub.get_current_instance()
        meta = hub.get_info('dataset_meta') or {}
        data_root = meta.get('data_root') if meta.get('dataset_type') == 'rank_dataset' else None
        if data_root is None or data_root == self._recorded_split:
            return
        record = ranker_record(data_root, meta.get('higher_is_better'))
        if record is not None:
            hub.update_info(RECORD_KEY, record)
        self._recorded_split = data_root

    @staticmethod
    def predict(scores: torch.Tensor, labels: Sequence, keys: Sequence[str],
                levels: Sequence[str]) -> List[Dict[str, Any]]:
        """One ``{'score', 'label', 'key', 'level'}`` dict per item (plain Python values)."""
        labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
        return [{'score': float(score), 'label': float(label), 'key': key, 'level': level}
                for score, label, key, level in zip(scores.tolist(), labels, keys, levels)]
