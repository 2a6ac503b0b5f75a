"""Where the ImageNet VGG weights of a perceptual loss are: found on disk, downloaded, or a clear error.

Both toolboxes' perceptual losses need torchvision's ImageNet VGG; neither says where it looks nor lets a
run go without a network connection. :func:`find_imagenet_vgg_weights` looks in BasicSR's place and in
torch's hub cache, then tries torchvision's download, and otherwise raises :class:`MissingVGGWeightsError`
saying where to put the file. Used by the plugin's ``VGGPerceptualLoss`` and by the checks of BasicSR's /
MMagic's own ``PerceptualLoss`` (:mod:`ranksrgan_plugin.compat`).
"""
import os.path as osp

import torch


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
