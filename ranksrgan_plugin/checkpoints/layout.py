"""Where a checkpoint keeps its weights and whose keys they are: wrappers, prefixes, the official layouts.

Wrappers, tried in this order when no ``param_key`` is given (:data:`WRAPPER_KEYS`): BasicSR's
``params_ema`` and ``params``, mmengine's ``state_dict``, ``model_state_dict``; a mapping with none
of them is the state_dict itself. DataParallel's ``module.`` prefix is stripped from every key.
:func:`detect_layout` names which of the authors' key layouts a bare state_dict is in
(:mod:`.official` converts them).
"""
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from .errors import CheckpointKeyError, UnknownCheckpointLayout

StateDict = Dict[str, torch.Tensor]
WRAPPER_KEYS = ('params_ema', 'params', 'state_dict', 'model_state_dict')
BASICSR_WRAPPERS = ('params_ema', 'params')
MODULE_PREFIX = 'module.'
OFFICIAL_LAYOUTS = ('ranker_mmsr', 'ranker_features', 'generator_mmsr', 'generator_model', 'rrdbnet_mmsr',
                    'rrdbnet_model')


def strip_module_prefix(state_dict: Mapping[str, Any]) -> StateDict:
    """``state_dict`` without DataParallel's ``module.`` key prefix, in the same order."""
    return OrderedDict((k[len(MODULE_PREFIX):] if k.startswith(MODULE_PREFIX) else k, v)
                       for k, v in state_dict.items())


def unwrap_state_dict(mapping: Mapping[str, Any], param_key: Optional[str] = None, source: str = 'checkpoint',
                      wrappers: Sequence[str] = WRAPPER_KEYS) -> StateDict:
    """The bare state_dict of an in-memory checkpoint, ``module.`` stripped.

    Args:
        mapping: a loaded checkpoint (a wrapper or a state_dict).
        param_key: the entry that holds the weights; when given it must exist
            (:class:`CheckpointKeyError`, naming ``source`` and the entries it has).
        source: what the error messages call the checkpoint (e.g. its path).
        wrappers: without ``param_key``, the entries tried in order (the first that holds a mapping).
    """
    if param_key:
        if param_key not in mapping:
            raise CheckpointKeyError(f'{source} has no {param_key!r} entry (has {list(mapping)[:5]}).')
        return strip_module_prefix(mapping[param_key])
    for key in wrappers:
        if isinstance(mapping.get(key), Mapping):
            return strip_module_prefix(mapping[key])
    return strip_module_prefix(mapping)


def is_mmengine_checkpoint(checkpoint: Any) -> bool:
    """True for a checkpoint saved by mmengine's Runner (weights under ``state_dict``)."""
    return isinstance(checkpoint, Mapping) and isinstance(checkpoint.get('state_dict'), Mapping)


def basicsr_wrapper(checkpoint: Any) -> Optional[str]:
    """``params_ema`` / ``params`` when ``checkpoint`` is a BasicSR file (the first holding weights), else None."""
    if not isinstance(checkpoint, Mapping) or is_mmengine_checkpoint(checkpoint):
        return None
    return next((key for key in BASICSR_WRAPPERS if isinstance(checkpoint.get(key), Mapping)), None)


def basicsr_weights(checkpoint: Any, param_key: Optional[str]) -> Mapping[str, Any]:
    """What BasicSR's ``load_network`` takes from a checkpoint: ``param_key`` (else ``params``), ``module.`` removed."""
    if not isinstance(checkpoint, Mapping):
        return {}
    if param_key is not None:
        key = param_key if param_key in checkpoint else 'params'
        checkpoint = checkpoint.get(key) if isinstance(checkpoint.get(key), Mapping) else {}
    return strip_module_prefix(checkpoint)


def weights_under(checkpoint: Any, prefix: Optional[str]) -> Mapping[str, Any]:
    """The ``prefix`` keys (stripped) of an mmengine checkpoint's state_dict; without a prefix, the weights of
    any checkpoint (mmengine's ``state_dict``, BasicSR's ``params``, a bare state_dict)."""
    if not isinstance(checkpoint, Mapping):
        return {}
    if not prefix:
        return unwrap_state_dict(checkpoint, wrappers=('state_dict', 'params', 'params_ema'))
    state = checkpoint.get('state_dict', checkpoint)
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The official layout of a bare state_dict, one of :data:`OFFICIAL_LAYOUTS`; else
    :class:`UnknownCheckpointLayout`."""
    keys = set(state_dict)
    if {'conv0_0.weight', 'conv0_1.weight', 'classifier.0.weight'} <= keys:
        return 'ranker_mmsr'
    if any(k.startswith('features.') for k in keys) and 'classifier.0.weight' in keys:
        return 'ranker_features'
    if {'conv_first.weight', 'recon_trunk.0.conv1.weight', 'LRconv.weight', 'conv_last.weight'} <= keys:
        return 'generator_mmsr'
    if {'model.0.weight', 'model.1.sub.0.res.0.weight', 'model.10.weight'} <= keys:
        return 'generator_model'
    if {'conv_first.weight', 'RRDB_trunk.0.RDB1.conv1.weight', 'trunk_conv.weight', 'conv_last.weight'} <= keys:
        return 'rrdbnet_mmsr'
    if {'model.0.weight', 'model.1.sub.0.RDB1.conv1.0.weight', 'model.10.weight'} <= keys:
        return 'rrdbnet_model'
    sample = ', '.join(sorted(keys)[:6])
    raise UnknownCheckpointLayout(
        f'Unknown checkpoint layout (keys: {sample}, ...). Supported: the original RankSRGAN Rankers '
        '(conv0_0/bn0_1/classifier.N or features.N/classifier.N), generators (conv_first/recon_trunk/LRconv '
        'or model.0/model.1.sub.N.res/model.10) and ESRGAN RRDBNets (conv_first/RRDB_trunk/trunk_conv or '
        'model.0/model.1.sub.N.RDB1/model.10).')
