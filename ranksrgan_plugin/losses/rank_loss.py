"""Losses that train the Ranker on pairs of patches (paper Sec. 3.2, supplementary Sec. 1.3).

Sign convention, the one place it is defined: a Ranker's *score grows with its label*. For NIQE
and PI (lower = better) a better image gets a lower score; for a higher-is-better metric such as
Ma the rank dataset flips the labels (``RankPairDataset(higher_is_better=True)`` negates them),
so the convention holds for every metric.
"""
from typing import Optional

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

_REDUCTIONS = ('mean', 'sum')


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f'Unsupported reduction {reduction!r}; supported: {_REDUCTIONS}.')
    return reduction


@LOSS_REGISTRY.register()
class RankLoss(nn.Module):
    """The paper's *rank loss*: a margin ranking loss on Ranker scores of two levels of one patch.

    For a pair with labels (l_a, l_b), y = sign(l_a - l_b) and the loss is
    ``max(0, -y * (s_a - s_b) + margin)``: the score of the higher-labelled patch must exceed the
    other's by the margin. Pairs with equal labels carry no order and are left out (the original
    code gave them an arbitrary y = +1; with float labels ties practically never occur).

    ``clamp=5`` reproduces the original (``Ranker_model.py`` clamps both scores to [-5, 5] before
    the hinge): a pair whose scores are both saturated gets no gradient, which also bounds how far
    apart the levels' scores are pushed. ``None`` leaves the scores as they are.

    Args:
        margin (float): Margin of the ranking hinge. Default: 0.5 (paper).
        loss_weight (float): Weight of the loss. Default: 1.0.
        reduction (str): 'mean' over the ordered pairs, or 'sum'. Default: 'mean'.
        clamp (float | None): Clamp scores to [-clamp, clamp] first. Default: 5 (the original).
    """

    def __init__(self, margin: float = 0.5, loss_weight: float = 1.0, reduction: str = 'mean',
                 clamp: Optional[float] = 5.0) -> None:
        super().__init__()
        self.margin = margin
        self.loss_weight = loss_weight
        self.reduction = _check_reduction(reduction)
        if clamp is not None and clamp <= 0:
            raise ValueError(f'RankLoss clamp must be positive or None, got {clamp}.')
        self.clamp = clamp

    def forward(self, score_a: torch.Tensor, score_b: torch.Tensor, label_a: torch.Tensor,
                label_b: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of pairs; every argument has shape (N,) or (N, 1)."""
        score_a, score_b = score_a.reshape(-1), score_b.reshape(-1)
        if self.clamp is not None:
            score_a, score_b = score_a.clamp(-self.clamp, self.clamp), score_b.clamp(-self.clamp, self.clamp)
        target = torch.sign(label_a.reshape(-1) - label_b.reshape(-1)).to(score_a.dtype)
        ordered = target != 0
        hinge = F.margin_ranking_loss(
            score_a[ordered], score_b[ordered], target[ordered], margin=self.margin, reduction='sum')
        if self.reduction == 'mean':
            hinge = hinge / ordered.sum().clamp(min=1)
        return self.loss_weight * hinge


@LOSS_REGISTRY.register()
class RankRegressionLoss(nn.Module):
    """The paper's *"regression" Ranker* loss: the score regresses the label value itself.

    Same call as :class:`RankLoss`, so RankerModel trains either one: both items of every pair
    are regressed to their own labels.

    Args:
        criterion (str): 'l1' or 'mse'. Default: 'l1'.
        loss_weight (float): Weight of the loss. Default: 1.0.
        reduction (str): 'mean' or 'sum' over the 2N items. Default: 'mean'.
    """

    def __init__(self, criterion: str = 'l1', loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        criteria = {'l1': F.l1_loss, 'mse': F.mse_loss}
        if criterion not in criteria:
            raise ValueError(f'Unsupported criterion {criterion!r} for RankRegressionLoss; '
                             f'supported: {list(criteria)}.')
        self.criterion = criteria[criterion]
        self.loss_weight = loss_weight
        self.reduction = _check_reduction(reduction)

    def forward(self, score_a: torch.Tensor, score_b: torch.Tensor, label_a: torch.Tensor,
                label_b: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of pairs; every argument has shape (N,) or (N, 1)."""
        scores = torch.cat([score_a.reshape(-1), score_b.reshape(-1)])
        labels = torch.cat([label_a.reshape(-1), label_b.reshape(-1)]).to(scores.dtype)
        return self.loss_weight * self.criterion(scores, labels, reduction=self.reduction)
