"""The rank-content loss that RankSRGAN adds to the SRGAN generator's losses (paper Eq. 5)."""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import distributed as dist
from torch import nn

from .rank_loss import _check_reduction


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@LOSS_REGISTRY.register()
class RankContentLoss(nn.Module):
    """The paper's *rank-content loss*: ``weight * sigmoid(R(G(x)) - bias)``, reduced over the batch.

    R is the frozen Ranker; its score grows with the metric label (for NIQE: higher = worse), so
    minimising the loss pushes the generator towards better metric values. For a Ranker whose
    score grows with quality, set ``higher_is_better=True`` (the score's sign is flipped).

    ``reduction='sum'`` is the original code's (``RankSRGAN_model.py``: ``torch.sum`` over the
    batch, whose strength grows with the batch: 8x a mean at the original's total batch of 8). It
    sums over the *total* batch: the original summed over the whole batch that DataParallel split
    across its GPUs; under DDP each process sees only its share and DDP *averages* gradients, so
    each process's sum is multiplied by the world size, which gives exactly the gradient of the sum
    over all processes' images (and logs that total). ``'mean'`` is independent of batch and world size.

    Args:
        loss_weight (float): Weight (paper: 0.03). Default: 0.03.
        bias (float): Subtracted from the score inside the sigmoid. Default: 0.
        reduction (str): 'sum' (over the total batch, see above) or 'mean'. Default: 'sum' (the original).
        higher_is_better (bool): The Ranker's score grows with quality. Default: False (every Ranker the plugin
            trains: see :mod:`ranksrgan_plugin.rank_content.ranker_record`, which RankSRGAN checks it against).
    """

    def __init__(self, loss_weight: float = 0.03, bias: float = 0.0, reduction: str = 'sum',
                 higher_is_better: bool = False) -> None:
        super().__init__()
        self.loss_weight, self.bias = loss_weight, bias
        self.reduction = _check_reduction(reduction)
        if not isinstance(higher_is_better, bool):  # a quoted 'false' would flip the loss
            raise ValueError(f'RankContentLoss higher_is_better must be true or false, got {higher_is_better!r}.')
        self.higher_is_better = higher_is_better
        self.sign = -1.0 if higher_is_better else 1.0

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of Ranker scores, shape (N,) or (N, 1)."""
        values = torch.sigmoid(self.sign * (scores.reshape(-1) - self.bias))
        if self.reduction == 'mean':
            return self.loss_weight * values.mean()
        return self.loss_weight * _world_size() * values.sum()
