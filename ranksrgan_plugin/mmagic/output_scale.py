"""Generator outputs of another size than their GT: the generator's factor is not the data's."""
from typing import Optional

import torch
from mmagic.structures import DataSample
from torch import nn

from ..utils.upscaler import ScaleError


def check_outputs_fit_gt(inputs: torch.Tensor, outputs: torch.Tensor, data_samples: Optional[DataSample],
                         generator: nn.Module) -> None:
    """Refuse generator outputs whose size is not their GT images' (a batch of training or validation).

    The generator's factor and the data's differ when the config's ``scale`` (its pipelines' ``SetValues``, which
    ``PairedRandomCrop`` reads, and its metrics' ``crop_border``) is not the generator's: upstream then fails in the
    pixel loss or a metric on tensors of other shapes, or, without a pixel loss, in the discriminator. Here: a
    :class:`~ranksrgan_plugin.utils.upscaler.ScaleError` naming both factors and the options to change, at the first
    batch, whichever entry runs the config (MMagic's ``tools/train.py`` / ``tools/test.py``, a Runner).
    """
    gt = getattr(data_samples, 'gt_img', None) if data_samples is not None else None
    if not isinstance(gt, torch.Tensor) or gt.ndim != 4 or outputs.ndim != 4 or gt.shape[-2:] == outputs.shape[-2:]:
        return
    (height, width), (out_h, out_w), (gt_h, gt_w) = inputs.shape[-2:], outputs.shape[-2:], gt.shape[-2:]
    raise ScaleError(
        f'model.generator ({type(generator).__name__}) maps the {height}x{width} inputs of this batch to '
        f'{out_h}x{out_w} (x{out_h / height:g}), but their GT images are {gt_h}x{gt_w} (x{gt_h / height:g}): the '
        "generator's factor, the data's and the config's scale (its pipelines' SetValues scale, which "
        "PairedRandomCrop reads, and the metrics' crop_border) must agree. Give data of the generator's factor "
        'and set scale to it, or give the generator the factor of the data.')
