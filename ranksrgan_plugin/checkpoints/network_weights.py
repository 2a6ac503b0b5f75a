"""The weights of any BasicSR network from a BasicSR checkpoint or one of the authors' releases.

:func:`arch_state_dict` gives a checkpoint's state_dict under the keys of the network's class: a BasicSR
file as it is, an official RankSRGAN / SRResNet / SRGAN / ESRGAN file converted (:mod:`.official`);
:func:`load_network_weights` loads a file so into a built network, strictly. Used by the rank dataset's
network levels, inference and the paper road.
"""
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from .errors import CheckpointKeyError, CheckpointMismatchError, UnknownCheckpointLayout
from .layout import detect_layout, unwrap_state_dict
from .official import convert_official_checkpoint
from .read import read_checkpoint

StateDictWithOrigin = Tuple[Dict[str, torch.Tensor], Optional[str], Optional[Dict[str, Any]]]


def arch_state_dict(checkpoint: Mapping[str, Any], param_key: Optional[str] = None,
                    source: str = 'checkpoint') -> StateDictWithOrigin:
    """(state_dict with the arch's keys, official layout or ``None``, options read off an official one).

    A BasicSR checkpoint (``param_key``, else ``params_ema``, else ``params``) is returned as it is; an
    official checkpoint (a layout :func:`~.layout.detect_layout` knows) is converted to the keys of the
    plugin's / BasicSR's class. A missing ``param_key`` or an official file that does not convert raises
    :class:`~.errors.CheckpointMismatchError` naming ``source``.
    """
    try:
        state_dict = unwrap_state_dict(checkpoint, param_key, source)
    except CheckpointKeyError as err:
        raise CheckpointMismatchError(str(err)) from err
    try:
        layout = detect_layout(state_dict)
    except UnknownCheckpointLayout:
        return state_dict, None, None  # a BasicSR arch's own keys
    try:
        layout, options, converted = convert_official_checkpoint(state_dict)
    except (UnknownCheckpointLayout, RuntimeError) as err:
        raise CheckpointMismatchError(f'{source}: a {layout} checkpoint that does not convert: {err}') from err
    return converted.state_dict(), layout, options


def load_network_weights(net: torch.nn.Module, weights: str, param_key: Optional[str] = None,
                         what: str = 'Network') -> Optional[str]:
    """Load the checkpoint file ``weights`` into ``net`` strictly (see :func:`arch_state_dict`); the
    official layout it was converted from, if any. ``what`` starts the error messages
    (:class:`~.errors.CheckpointMismatchError`)."""
    state_dict, layout, options = arch_state_dict(read_checkpoint(weights), param_key, weights)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        read = f' (an official {layout} checkpoint: {options})' if layout else ''
        raise CheckpointMismatchError(f'{what}: {weights}{read} does not fit the network {type(net).__name__}: '
                                      f'{err}') from err
    return layout
