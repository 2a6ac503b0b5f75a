"""Whether a checkpoint's weights fit the network they go into, and what a checkpoint looks like when they do not.

Loaders that are lenient upstream (mmengine's ``strict=False``) give a network of random weights
plus a warning when handed the wrong file; :func:`check_weights_fit` turns that into an error that
names the file, the option that named it, what is missing or mis-shaped, and what the file holds
instead (:func:`describe_weights`).
"""
from typing import Any, Mapping, Optional

import torch

from ..archs.official_weights import UnknownCheckpointLayout, detect_layout

_LAYOUT_NAMES = {
    'ranker_mmsr': "a Ranker (conv0_0 ... classifier.N: the plugin's RankerVGG or the official release)",
    'ranker_features': 'an official RankSRGAN Ranker, older release (features.N, classifier.N)',
    'generator_mmsr': "a RankSRGAN generator (conv_first, recon_trunk.N, LRconv: the plugin's or the official)",
    'generator_model': 'an official RankSRGAN / SRResNet / SRGAN generator, older release (model.N)',
    'rrdbnet_mmsr': 'an official ESRGAN RRDBNet (conv_first, RRDB_trunk.N)',
    'rrdbnet_model': 'an official ESRGAN RRDBNet, older release (model.N ... RDB1)',
}
# (keys that all appear, description), tried before the official layouts
_SIGNATURES = (
    (('features.0.weight', 'classifier.6.weight'), "torchvision's VGG (features.N, classifier.N)"),
    (('body.0.conv1.weight', 'upconv1.weight'), "BasicSR's MSRResNet generator (conv_first, body.N, upconv1)"),
    (('body.0.rdb1.conv1.weight',), "BasicSR's RRDBNet generator (conv_first, body.N.rdb1)"),
    (('trunk_net.0.conv1.weight',), "MMagic's MSRResNet generator without its 'generator.' prefix"),
    (('conv0_0.weight', 'linear1.weight'), 'a VGG-style discriminator (conv0_0 ... linear1, linear2)'),
)


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the network they were given to (the message names file and option)."""


def _sample(keys, count: int = 4) -> str:
    keys = list(keys)
    return ', '.join(keys[:count]) + (' ...' if len(keys) > count else '')


def describe_weights(checkpoint: Any) -> str:
    """A short description of a loaded checkpoint: its wrapper and the network its keys belong to."""
    if not isinstance(checkpoint, Mapping):
        return f'not a state_dict but a {type(checkpoint).__name__}'
    for wrapper, who in (('params_ema', 'a BasicSR checkpoint'), ('params', 'a BasicSR checkpoint'),
                         ('state_dict', 'an mmengine (MMagic) checkpoint')):
        if isinstance(checkpoint.get(wrapper), Mapping):
            return f"{who} (weights under '{wrapper}') of {describe_weights(checkpoint[wrapper])}"
    if all(key in checkpoint for key in ('iter', 'optimizers', 'schedulers')):
        return f"a BasicSR training state (<iter>.state, iteration {checkpoint['iter']}), not weights"
    keys = [key for key, value in checkpoint.items() if isinstance(value, torch.Tensor)]
    if not keys:
        return f'a mapping without tensors (entries {_sample(checkpoint)})'
    tops = sorted({key.split('.')[0] for key in keys})
    if {'generator', 'discriminator'} & set(tops) or 'ranker' in tops:
        return f'a model with submodules {", ".join(tops)}'
    for signature, description in _SIGNATURES:
        if all(key in checkpoint for key in signature):
            return description
    try:
        return _LAYOUT_NAMES[detect_layout(checkpoint)]
    except UnknownCheckpointLayout:
        return f'a network with keys {_sample(keys)}'


def check_weights_fit(expected: Mapping[str, torch.Tensor], weights: Mapping[str, Any], source: str, option: str,
                      checkpoint: Optional[Any] = None, network: str = 'the network') -> None:
    """Raise :class:`CheckpointMismatchError` unless ``weights`` holds exactly the keys of ``expected`` (and shapes).

    Args:
        expected: the receiving network's ``state_dict()``.
        weights: the state_dict taken from the checkpoint for it.
        source: the checkpoint's path (or what names it).
        option: the option that named the checkpoint (e.g. ``model.generator.init_cfg.checkpoint``).
        checkpoint: the whole loaded file, described in the message (default: ``weights``).
        network: what the message calls the receiving network.
    """
    missing = [key for key in expected if key not in weights]
    misshaped = [f'{key} {tuple(weights[key].shape)} instead of {tuple(value.shape)}' for key, value in expected.items()
                 if key in weights and isinstance(weights[key], torch.Tensor) and weights[key].shape != value.shape]
    unexpected = [key for key, value in weights.items() if key not in expected and isinstance(value, torch.Tensor)]
    if not missing and not misshaped and not unexpected:
        return
    if missing:
        problem = f'{len(missing)} of its {len(expected)} weights are not in it ({_sample(missing)})'
    elif misshaped:
        problem = f'{len(misshaped)} weights have another shape ({_sample(misshaped, 2)})'
    else:
        problem = f'the file holds {len(unexpected)} weights the network does not have ({_sample(unexpected)})'
    raise CheckpointMismatchError(
        f'{source} (named by {option}) does not fit {network}: {problem}. The file is '
        f'{describe_weights(checkpoint if checkpoint is not None else weights)}.')
