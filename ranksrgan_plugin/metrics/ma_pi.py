"""BasicSR registration of Ma et al.'s metric and the Perceptual Index (:mod:`ranksrgan_plugin.iqa.ma`)."""
from typing import Any, Union

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from ..iqa import ma_score, pi_batch

__all__ = ['calculate_ma', 'calculate_pi']

Image = Union[np.ndarray, torch.Tensor]


@METRIC_REGISTRY.register()
def calculate_ma(img: Image, crop_border: int, input_order: str = 'HWC', **kwargs: Any) -> float:
    """Ma et al.'s score (higher is better); BasicSR ``val.metrics.<name>.type: calculate_ma``.

    kwargs: ``model_path`` (else $RANKSRGAN_MA_MODEL, else ~/.cache/ranksrgan_plugin/ma/model.mat); others ignored.
    """
    return ma_score(img, crop_border, kwargs.get('model_path'), input_order)


@METRIC_REGISTRY.register()
def calculate_pi(img: Image, crop_border: int, input_order: str = 'HWC', **kwargs: Any) -> float:
    """Perceptual Index ((10 - Ma) + NIQE) / 2 (lower is better); BasicSR ``type: calculate_pi``.

    kwargs: ``model_path`` as for :func:`calculate_ma`, ``device`` of both metrics; others ignored.
    """
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    return float(pi_batch(t.unsqueeze(0), crop_border, input_order, kwargs.get('model_path'),
                          kwargs.get('device'))[0])
