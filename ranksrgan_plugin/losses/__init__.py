"""Losses, registered into BasicSR's LOSS_REGISTRY on import."""
from .rank_loss import RankLoss, RankRegressionLoss

__all__ = ['RankLoss', 'RankRegressionLoss']
