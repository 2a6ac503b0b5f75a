"""Metrics registered on import: thin BasicSR METRIC_REGISTRY wrappers of :mod:`ranksrgan_plugin.iqa` and the
Ranker's metrics (the rank-dataset tool's patch metrics are in :mod:`ranksrgan_plugin.rank_dataset.patch_metrics`)."""
from .ma_pi import calculate_ma, calculate_pi
from .niqe_batch import calculate_niqe_batched
from .rank_metrics import calculate_pair_accuracy, calculate_srocc

__all__ = ['calculate_ma', 'calculate_niqe_batched', 'calculate_pair_accuracy', 'calculate_pi', 'calculate_srocc']
