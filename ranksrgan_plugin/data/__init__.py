"""Datasets, registered into BasicSR's DATASET_REGISTRY on import."""
from .rank_pair_dataset import RankPairDataset

__all__ = ['RankPairDataset']
