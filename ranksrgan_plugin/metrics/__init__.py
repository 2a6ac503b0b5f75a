"""Metrics, registered into BasicSR's METRIC_REGISTRY (and the rank-dataset tool's patch metrics) on import."""
from .ma_metric import calculate_ma, calculate_pi
from .niqe_batch import calculate_niqe_batched, niqe_batch
from .rank_metrics import calculate_pair_accuracy, calculate_srocc

__all__ = ['calculate_ma', 'calculate_niqe_batched', 'calculate_pair_accuracy', 'calculate_pi', 'calculate_srocc',
           'niqe_batch']
