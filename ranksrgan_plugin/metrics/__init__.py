"""Metrics, registered into BasicSR's METRIC_REGISTRY on import."""
from .rank_metrics import calculate_pair_accuracy, calculate_srocc

__all__ = ['calculate_pair_accuracy', 'calculate_srocc']
