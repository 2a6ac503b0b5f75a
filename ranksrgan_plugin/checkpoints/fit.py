"""Whether a checkpoint's weights fit the network they go into.

Loaders that are lenient upstream (mmengine's ``strict=False``) give a network of random weights
plus a warning when handed the wrong file; :func:`check_weights_fit` turns that into an error that
names the file, the option that named it, what is missing or mis-shaped, and what the file holds
instead (:func:`~.describe.describe_weights`).
"""
from typing import Any, Mapping, Optional

import torch

from .describe import describe_weights, sample_names
from .errors import CheckpointMismatchError


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
        problem = f'{len(missing)} of its {len(expected)} weights are not in it ({sample_names(missing, 4)})'
    elif misshaped:
        problem = f'{len(misshaped)} weights have another shape ({sample_names(misshaped, 2)})'
    else:
        problem = f'the file holds {len(unexpected)} weights the network does not have ({sample_names(unexpected, 4)})'
    raise CheckpointMismatchError(
        f'{source} (named by {option}) does not fit {network}: {problem}. The file is '
        f'{describe_weights(checkpoint if checkpoint is not None else weights)}.')
