"""Inference with MMagic from the generator weights alone: no Ranker, no VGG19, no discriminator.

``mmagic.apis`` (``init_model``, ``MMagicInferencer``) cannot be imported with the pinned stack:
``mmagic/apis/__init__.py`` imports ``MMagicInferencer``, whose inferencers import ``controlnet_aux``
(and other requirements of MMagic's diffusion models) that are not installed. This module is the
equivalent for super-resolution:

    from ranksrgan_plugin.mmagic.inference import init_model, upscale_image
    model = init_model('options/mmagic/ranksrgan_x4c64b16_test_set5-set14-pirm.py', 'iter_500000.pth')
    sr = upscale_image(model, cv2.imread('lr.png'))       # BGR uint8 in, BGR uint8 out (x model.scale)

Any RankSRGAN / RankESRGAN config works: its ``model`` is replaced by MMagic's ``BaseEditModel`` with
the same generator and data preprocessor (:func:`inference_config`), so only the generator's weights
are read from the checkpoint (a RankSRGAN / SRGAN training checkpoint, or a file holding only
``generator.*`` keys such as MMagic's MSRResNet zoo file).
"""
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from ..checkpoints import (
    CheckpointMismatchError,
    basicsr_wrapper,
    describe_weights,
    read_mmengine_checkpoint,
    unwrap_state_dict,
)
from ..utils.upscaler import ScaleError, check_bgr_uint8, infer_scale

GENERATOR_PREFIX = 'generator.'
INIT_MODEL_OPTION = "init_model's checkpoint"


def inference_config(config: Union[str, Config]) -> Config:
    """The config with its ``model`` reduced to ``BaseEditModel`` (generator + data preprocessor only)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config.copy()
    model = cfg.model
    if model.get('type') != 'BaseEditModel':
        cfg.model = dict(type='BaseEditModel', generator=model['generator'],
                         pixel_loss=dict(type='L1Loss', loss_weight=1.0),  # required by BaseEditModel, unused
                         data_preprocessor=model.get('data_preprocessor', cfg.get('data_preprocessor')))
    return cfg


def generator_state_dict(checkpoint: Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """The generator's weights of an mmengine checkpoint (``generator.*`` keys, EMA's ``generator_ema.*`` when
    present), or of a bare generator state_dict (BasicSR ``params`` / ``params_ema`` files too)."""
    state = checkpoint.get('state_dict', checkpoint)
    for prefix in ('generator_ema.module.', 'generator_ema.', GENERATOR_PREFIX):
        weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            return weights
    return unwrap_state_dict(checkpoint)


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None, device: str = 'cpu') -> nn.Module:
    """Build the inference model of ``config`` (see :func:`inference_config`) and load the generator weights.

    The generator's keys must match exactly (:func:`load_generator_checkpoint`: a misfit names the file); the
    other parts of a training checkpoint (discriminator, perceptual VGG) are ignored. ``model.scale`` is the
    generator's measured upscaling factor (:func:`generator_scale`: it must equal the config's ``scale``).
    """
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules

    import ranksrgan_plugin.mmagic  # noqa: F401  (registers the plugin's generator)

    register_all_modules(init_default_scope=False)
    cfg = inference_config(config)
    with DefaultScope.overwrite_default_scope('mmagic'):
        model = MODELS.build(cfg.model)
    name = config if isinstance(config, str) else 'the config'
    if checkpoint is not None:
        load_generator_checkpoint(model.generator, checkpoint, name)
    model.cfg = cfg
    model = model.to(device).eval()
    model.scale = generator_scale(model.generator, cfg, name)
    return model


class InitModelCheckpointError(CheckpointMismatchError, RuntimeError):
    """``init_model``'s checkpoint does not fit the generator (the message names the file; a ``RuntimeError`` as
    torch's strict load, which it replaces)."""


def load_generator_checkpoint(generator: nn.Module, checkpoint: str, name: str = 'the config') -> None:
    """Load the weights of ``checkpoint`` (a path) into ``generator``; every misfit names the file.

    A BasicSR ``params`` / ``params_ema`` file goes through :func:`~.strict_init.generator_weights` (taken by the
    generators the two toolboxes share; BasicSR's MSRResNet refused saying why), unless its weights are exactly
    the generator's own keys (a file saved as ``{'params': generator.state_dict()}``). Other files: the generator's
    keys of :func:`generator_state_dict`, refused by :class:`InitModelCheckpointError` when they do not fit.
    """
    from .strict_init import generator_weights

    loaded = read_mmengine_checkpoint(checkpoint)
    weights = generator_state_dict(loaded) if isinstance(loaded, Mapping) else {}
    if basicsr_wrapper(loaded) and not _fits(generator.state_dict(), weights):
        weights = generator_weights(generator, loaded, checkpoint, INIT_MODEL_OPTION)[0]
    try:
        generator.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise InitModelCheckpointError(
            f'{checkpoint} (named by {INIT_MODEL_OPTION}) does not fit the generator of {name} '
            f'({type(generator).__name__}): the file is {describe_weights(loaded)}. {error}') from None


def _fits(expected: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> bool:
    return set(expected) == set(weights) and all(
        isinstance(weights[key], torch.Tensor) and weights[key].shape == value.shape for key, value in expected.items())


def generator_scale(generator: nn.Module, cfg: Config, name: str = 'the config') -> int:
    """The generator's upscaling factor, measured (one forward pass of a 16x16 input).

    Raises :class:`~ranksrgan_plugin.utils.upscaler.ScaleError` when the config's top-level ``scale``
    (its test pipeline's and metrics' factor) is another one.
    """
    options = cfg.model.generator
    num_in_ch = int(options.get('in_channels', options.get('num_in_ch', 3)))
    measured = infer_scale(generator, num_in_ch, f'the generator of {name} ({options.type})')
    declared = cfg.get('scale')
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != measured:
        raise ScaleError(f'{name}: scale = {declared}, but its model.generator ({options.type}) upscales '
                         f'x{measured}: set scale = {measured}, or give the generator the factor {declared}.')
    return measured


@torch.no_grad()
def upscale_image(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Super-resolve one BGR uint8 HWC image (as ``cv2.imread`` reads it); returns BGR uint8. ``None``, a gray,
    BGRA or non-uint8 image raises :class:`~ranksrgan_plugin.utils.upscaler.BadImageError` saying what to do.

    The generator takes RGB through the model's data preprocessor (MMagic's SR pipelines load RGB);
    the output is clamped to [0, 255] and rounded, as BasicSR's ``tensor2img`` and MMagic's
    ``tools/test.py`` image saving do.
    """
    check_bgr_uint8(image)
    device = next(model.parameters()).device
    preprocessor = model.data_preprocessor
    rgb = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))).float()[None].to(device)
    mean, std = preprocessor.mean.view(1, -1, 1, 1), preprocessor.std.view(1, -1, 1, 1)
    normalize = getattr(preprocessor, '_enable_normalize', True)
    inputs = (rgb - mean) / std if normalize else rgb
    output = model.generator(inputs)
    output = output * std + mean if normalize else output
    out = output[0].clamp(0, 255).round().byte().cpu().numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(out[..., ::-1])
