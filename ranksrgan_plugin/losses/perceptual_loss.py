"""BasicSR's perceptual loss with an explicit, offline-safe choice of VGG weights."""
import os
import os.path as osp
from typing import Any, Optional

import torch
from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import LOSS_REGISTRY

from ..compat.basicsr import basicsr_vgg_weights

BASICSR_VGG19_PATH = osp.join('experiments', 'pretrained_models', 'vgg19-dcbb9e9d.pth')


class MissingVGGWeightsError(FileNotFoundError):
    """The ImageNet VGG weights of the perceptual loss are neither on disk nor downloadable."""


def _weights_url(vgg_type: str) -> str:
    import torchvision

    return torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url


def find_imagenet_vgg_weights(vgg_type: str = 'vgg19', option: str = '`vgg_weights` in perceptual_opt') -> str:
    """Path of torchvision's ImageNet weights for ``vgg_type``, downloading them if possible.

    Looks in BasicSR's place (``experiments/pretrained_models/``, relative to the working
    directory) and in torch's hub cache (``$TORCH_HOME/hub/checkpoints``); else tries torchvision's
    download. Raises :class:`MissingVGGWeightsError` saying where to put the file, or which ``option``
    (as the toolbox names it) to set to its path.
    """
    file_name = osp.basename(_weights_url(vgg_type))
    hub_path = osp.join(torch.hub.get_dir(), 'checkpoints', file_name)
    candidates = [osp.join('experiments', 'pretrained_models', file_name), hub_path]
    for path in candidates:
        if osp.isfile(path):
            return osp.abspath(path)
    try:
        torch.hub.load_state_dict_from_url(_weights_url(vgg_type), progress=False)
    except Exception as error:  # offline: URLError, socket errors, HTTP errors ...
        raise MissingVGGWeightsError(
            f'The perceptual loss needs the ImageNet {vgg_type} weights ({file_name}), which are not on disk and '
            f'could not be downloaded ({type(error).__name__}: {error}). Put {file_name} at '
            f'{osp.abspath(candidates[0])} or {hub_path}, or set {option} to its path.'
        ) from None
    return hub_path


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
