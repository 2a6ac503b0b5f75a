"""Datasets, registered into BasicSR's DATASET_REGISTRY on import."""
from .rank_pair_dataset import RankPairDataset
from .raw_paired_image_dataset import RawPairedImageDataset

__all__ = ['RankPairDataset', 'RawPairedImageDataset']
