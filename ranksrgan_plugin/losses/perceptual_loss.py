"""BasicSR's perceptual loss with an explicit, offline-safe choice of VGG weights."""
import os
from typing import Any, Optional

from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import LOSS_REGISTRY

from ..compat.basicsr import basicsr_vgg_weights
from .vgg_weights import MissingVGGWeightsError, find_imagenet_vgg_weights


@LOSS_REGISTRY.register()
class VGGPerceptualLoss(PerceptualLoss):
    """BasicSR's PerceptualLoss (the SRGAN/ESRGAN *perceptual loss*) with ``vgg_weights`` chosen explicitly.

    Args:
        vgg_weights (str | None): 'imagenet' (default): torchvision's ImageNet weights, found on
            disk or downloaded, else a clear error saying where to put the file; a path: that
            file; None: an unpretrained VGG, for tests only (logged as a warning). Never falls
            back to random weights by itself.
        Other args: as BasicSR's PerceptualLoss (``layer_weights``, ``vgg_type``, ...).
    """

    def __init__(self, layer_weights: dict, vgg_type: str = 'vgg19', vgg_weights: Optional[str] = 'imagenet',
                 **kwargs: Any) -> None:
        if vgg_weights == 'imagenet':
            vgg_weights = find_imagenet_vgg_weights(vgg_type)
        elif vgg_weights is None:
            get_root_logger().warning('VGGPerceptualLoss: vgg_weights is None, the VGG has random weights '
                                      '(meant for tests; a real run needs the ImageNet weights).')
        elif not os.path.isfile(vgg_weights):
            raise MissingVGGWeightsError(f'VGGPerceptualLoss: vgg_weights file {vgg_weights} does not exist.')
        self.vgg_weights = vgg_weights
        with basicsr_vgg_weights(vgg_weights):
            super().__init__(layer_weights, vgg_type=vgg_type, **kwargs)
