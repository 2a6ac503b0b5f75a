"""Losses, registered into BasicSR's LOSS_REGISTRY on import."""
from .perceptual_loss import VGGPerceptualLoss
from .rank_content_loss import RankContentLoss
from .rank_loss import RankLoss, RankRegressionLoss

__all__ = ['RankContentLoss', 'RankLoss', 'RankRegressionLoss', 'VGGPerceptualLoss']
