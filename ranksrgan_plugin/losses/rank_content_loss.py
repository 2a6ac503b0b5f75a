"""The rank-content loss that RankSRGAN adds to the SRGAN generator's losses (paper Eq. 5)."""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from .rank_loss import _check_reduction


@LOSS_REGISTRY.register()
class RankContentLoss(nn.Module):
    """The paper's *rank-content loss*: ``weight * sigmoid(R(G(x)) - bias)``, reduced over the batch.

    R is the frozen Ranker; its score grows with the metric label (for NIQE: higher = worse), so
    minimising the loss pushes the generator towards better metric values. ``reduction='mean'`` is
    the sane default; ``'sum'`` reproduces the original code, whose strength grew with the batch
    size. For a Ranker whose score grows with quality, set ``higher_is_better=True`` (the score's
    sign is flipped).

    Args:
        loss_weight (float): Weight (paper: 0.03). Default: 0.03.
        bias (float): Subtracted from the score inside the sigmoid. Default: 0.
        reduction (str): 'mean' or 'sum' over the batch. Default: 'mean'.
        higher_is_better (bool): The Ranker's score grows with quality. Default: False.
    """

    def __init__(self, loss_weight: float = 0.03, bias: float = 0.0, reduction: str = 'mean',
                 higher_is_better: bool = False) -> None:
        super().__init__()
        self.loss_weight, self.bias = loss_weight, bias
        self.reduction = _check_reduction(reduction)
        self.sign = -1.0 if higher_is_better else 1.0

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of Ranker scores, shape (N,) or (N, 1)."""
        values = torch.sigmoid(self.sign * (scores.reshape(-1) - self.bias))
        return self.loss_weight * (values.mean() if self.reduction == 'mean' else values.sum())
