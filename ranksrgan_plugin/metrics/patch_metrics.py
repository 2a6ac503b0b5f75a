"""No-reference perceptual metrics that label rank-dataset patches, behind one small interface.

A patch metric maps a batch of equal-size BGR uint8 patches (N, H, W, 3) to N scores and says
whether higher scores are better. The rank-dataset tool asks for one by name (``niqe`` here; Ma
and PI plug in through :func:`register_patch_metric`).
"""
from typing import Any, Callable, Dict, Optional

import numpy as np


class PatchMetric:
    """A no-reference metric over batches of patches.

    Args:
        name (str): Name recorded in the rank dataset's manifest.
        higher_is_better (bool): Whether higher scores mean better images.
    """

    name = 'metric'
    higher_is_better = False

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """What the manifest records about the metric."""
        return {'name': self.name, 'higher_is_better': self.higher_is_better}


class NIQEPatchMetric(PatchMetric):
    """NIQE (Mittal et al. 2013), BasicSR's definition, batched: the paper's rank-dataset label.

    Args:
        crop_border (int): Pixels shaved off each side. Default: 4 (paper).
        convert_to (str): 'y' (BT.601 Y channel, as MATLAB) or 'gray'. Default: 'y'.
        device (str | None): Torch device. Default: CUDA when available, else CPU.
        batch_size (int): Patches per batch. Default: 64.
    """

    name = 'niqe'
    higher_is_better = False

    def __init__(self, crop_border: int = 4, convert_to: str = 'y', device: Optional[str] = None,
                 batch_size: int = 64) -> None:
        self.crop_border, self.convert_to, self.batch_size = crop_border, convert_to, batch_size
        self.device = device

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        from .niqe_batch import niqe_batch

        return niqe_batch(patches, crop_border=self.crop_border, input_order='HWC', convert_to=self.convert_to,
                          device=self.device, batch_size=self.batch_size)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), 'crop_border': self.crop_border, 'convert_to': self.convert_to}


PATCH_METRICS: Dict[str, Callable[..., PatchMetric]] = {'niqe': NIQEPatchMetric}


def register_patch_metric(name: str, factory: Callable[..., PatchMetric]) -> None:
    """Make a metric available to the rank-dataset tool under ``name``."""
    PATCH_METRICS[name] = factory


def build_patch_metric(opt: Dict[str, Any], device: Optional[str] = None) -> PatchMetric:
    """A patch metric from ``{type: <name>, **kwargs}``."""
    opt = dict(opt)
    name = opt.pop('type', None)
    if name not in PATCH_METRICS:
        raise ValueError(f'Unknown rank-dataset metric {name!r}; available: {sorted(PATCH_METRICS)}.')
    if device is not None:
        opt.setdefault('device', device)
    return PATCH_METRICS[name](**opt)
