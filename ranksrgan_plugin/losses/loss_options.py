"""The rank losses' option blocks checked before they are built, in both toolboxes.

Each block is refused by the name the user wrote it under (``train.rank_opt``, ``rankers[1].rank_opt``,
``model.rank_loss``, ``model.rankers[0].rank_loss``): an unknown key with its closest valid name, an unknown
``type``, and a loss of the other stage (the pair losses train a Ranker; the rank-content loss trains the
generator), which would otherwise fail at the first step with a ``TypeError`` about ``forward``.
"""
from typing import Any, Mapping

from ..utils.built_options import check_built_options
from .rank_content_loss import RankContentLoss
from .rank_loss import RankLoss, RankRegressionLoss


def check_rank_content_options(options: Any, where: str, registry: Any) -> None:
    """A RankSRGAN rank-content loss block (``RankContentLoss``, or any loss of one score per image)."""
    cls = check_built_options(options, where, registry, 'loss', 'RankContentLoss')
    if isinstance(cls, type) and issubclass(cls, (RankLoss, RankRegressionLoss)):
        raise ValueError(f"{where}.type {options['type']!r} trains a Ranker on pairs of patches; the generator's "
                         'rank-content loss is type RankContentLoss.')


def check_ranker_loss_options(options: Any, where: str, registry: Any, dataset_option: str) -> None:
    """A Ranker-training loss block (``RankLoss`` or ``RankRegressionLoss``); ``dataset_option`` names the training
    set's ``higher_is_better``, where a Ranker's direction is set."""
    if isinstance(options, Mapping) and 'higher_is_better' in options:
        raise ValueError(f"{where} takes no higher_is_better: a Ranker's direction is its training set's "
                         f'({dataset_option}; default: the rank set manifest\'s), and its score always grows with '
                         'the labels so set.')
    cls = check_built_options(options, where, registry, 'loss', 'RankLoss')
    if isinstance(cls, type) and issubclass(cls, RankContentLoss):
        raise ValueError(f"{where}.type 'RankContentLoss' is RankSRGAN's generator loss; a Ranker trains with "
                         'RankLoss (the paper) or RankRegressionLoss.')
