"""Metrics, registered into BasicSR's METRIC_REGISTRY on import."""
from .niqe_batch import calculate_niqe_batched, niqe_batch
from .rank_metrics import calculate_pair_accuracy, calculate_srocc

__all__ = ['calculate_niqe_batched', 'calculate_pair_accuracy', 'calculate_srocc', 'niqe_batch']
