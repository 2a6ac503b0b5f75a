"""Ma's metric and the Perceptual Index as rank-dataset patch metrics (``type: ma`` / ``type: pi``)."""
from typing import Any, Dict, Optional

import numpy as np

from ..iqa import load_ma_model, ma_batch, pi_batch
from .patch_metrics import PatchMetric, register_patch_metric

__all__ = ['MaPatchMetric', 'PIPatchMetric']


class MaPatchMetric(PatchMetric):
    """Ma's score for the rank-dataset tool (higher is better)."""

    name = 'ma'
    higher_is_better = True

    def __init__(self, crop_border: int = 4, model_path: Optional[str] = None, device: Optional[str] = None,
                 batch_size: int = 16) -> None:
        self.crop_border, self.model_path, self.device, self.batch_size = crop_border, model_path, device, batch_size
        self.model = load_ma_model(model_path)  # fail at build time, before any patch is cut

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return ma_batch(patches, self.crop_border, 'HWC', self.model, self.device, self.batch_size)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'crop_border': self.crop_border, 'model': self.model.path}


class PIPatchMetric(MaPatchMetric):
    """Perceptual Index for the rank-dataset tool (lower is better)."""

    name = 'pi'
    higher_is_better = False

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return pi_batch(patches, self.crop_border, 'HWC', self.model, self.device)


register_patch_metric('ma', MaPatchMetric)
register_patch_metric('pi', PIPatchMetric)
