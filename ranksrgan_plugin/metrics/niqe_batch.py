"""BasicSR registration of the batched NIQE (:func:`ranksrgan_plugin.iqa.niqe_batch`)."""
from typing import Any, Union

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from ..iqa import niqe_score

__all__ = ['calculate_niqe_batched']


@METRIC_REGISTRY.register()
def calculate_niqe_batched(img: Union[np.ndarray, torch.Tensor],
                           crop_border: int,
                           input_order: str = 'HWC',
                           convert_to: str = 'y',
                           **kwargs: Any) -> float:
    """NIQE of one image with the torch implementation; drop-in for ``basicsr.metrics.calculate_niqe``.

    Usable in BasicSR options as ``val.metrics.<name>.type: calculate_niqe_batched``.

    Args:
        img: one image in [0, 255], BGR, (H, W, 3) for 'HWC', (3, H, W) for 'CHW', or (H, W).
        crop_border: pixels cropped from each edge.
        input_order: 'HWC', 'CHW' or 'HW'.
        convert_to: 'y' or 'gray'.
        **kwargs: ``device`` is honoured; anything else is ignored, like BasicSR does.

    Returns:
        The NIQE score (lower is better).
    """
    return niqe_score(img, crop_border, input_order, convert_to, device=kwargs.get('device'))
