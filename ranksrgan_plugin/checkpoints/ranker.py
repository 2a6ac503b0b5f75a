"""Ranker checkpoints of every layout, into a :class:`~ranksrgan_plugin.archs.ranker_arch.RankerVGG` and out to BasicSR.

Layouts read by :func:`ranker_weights` (and, the first three, by :func:`load_ranker`):
    - BasicSR (the plugin's ``net_r_<iter>.pth``): ``{'params': state_dict}``;
    - the official releases: mmsr ``conv0_0 ... classifier.N`` (the plugin's own keys) or the older
      ``features.N`` (:func:`convert_features_state_dict`), bare state_dicts;
    - DataParallel saves of either (``module.`` stripped);
    - mmengine (a checkpoint written by MMagic's Runner, e.g. of the MMagic ``RankerModel``):
      ``{'meta': ..., 'state_dict': {'ranker.<name>': tensor, ...}, ...}``.

A file that is not a Ranker of the network's architecture (another depth, a generator, a VGG19, ...) is
refused by :class:`~.errors.CheckpointMismatchError` naming the file, the option that named it and what
the file holds (:func:`checked_ranker_weights`).
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, Optional

import torch
from torch import nn

from ..archs.ranker_arch import RankerVGG
from ..utils.atomic_files import save_torch_atomically
from .describe import describe_weights
from .errors import CheckpointMismatchError
from .fit import check_weights_fit
from .layout import StateDict, is_mmengine_checkpoint, unwrap_state_dict
from .read import read_checkpoint, read_mmengine_checkpoint

MMENGINE_RANKER_PREFIX = 'ranker.'


def read_ranker_file(path: str) -> Any:
    """A Ranker checkpoint of any layout, read safely (mmengine's training log allowed); a missing file named."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Ranker checkpoint {path} does not exist.')
    return read_mmengine_checkpoint(path)


def _layer_index(key: str) -> int:
    return int(key.split('.')[1])


def convert_features_state_dict(state_dict: Mapping[str, torch.Tensor], net: RankerVGG) -> Dict[str, torch.Tensor]:
    """Map the older release's ``features.N.*`` keys onto :class:`RankerVGG` names.

    In that layout ``features`` is one ``nn.Sequential`` in layer order (conv, [BN], LReLU, ...),
    so its parameter-bearing modules, sorted by N, are exactly our conv/BN modules in forward
    order; shapes are checked on the way. ``classifier.*`` keys are the same in both layouts.
    """
    own_modules = [name for name, module in net.named_children() if isinstance(module, (nn.Conv2d, nn.BatchNorm2d))]
    feature_keys = [k for k in state_dict if k.startswith('features.')]
    indices = sorted({_layer_index(k) for k in feature_keys})
    if len(indices) != len(own_modules):
        raise ValueError(f'Ranker checkpoint has {len(indices)} conv/BN layers under features.N, '
                         f'RankerVGG(depth={net.depth}) has {len(own_modules)}: wrong depth?')
    rename = {index: name for index, name in zip(indices, own_modules)}
    converted: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('features.'):
            key = re.sub(r'^features\.\d+', rename[_layer_index(key)], key)
        converted[key] = value
    return converted


def ranker_state_dict(checkpoint: Mapping, net: RankerVGG,
                      param_key: Optional[str] = 'params') -> Dict[str, torch.Tensor]:
    """The :class:`RankerVGG` state_dict held by a BasicSR or official checkpoint.

    Accepts a bare state_dict or a BasicSR checkpoint (``{param_key: state_dict}``), strips the
    ``module.`` prefix of DataParallel saves and converts the old ``features.N`` naming.
    """
    state_dict = unwrap_state_dict(checkpoint, wrappers=(param_key,) if param_key else ())
    if any(k.startswith('features.') for k in state_dict):
        state_dict = convert_features_state_dict(state_dict, net)
    return state_dict


def ranker_weights(checkpoint: Mapping[str, Any], net: nn.Module,
                   prefix: str = MMENGINE_RANKER_PREFIX) -> Dict[str, torch.Tensor]:
    """The Ranker's state_dict held by a checkpoint of any layout of the module docstring (mmengine's included)."""
    if not is_mmengine_checkpoint(checkpoint):
        return ranker_state_dict(checkpoint, net, 'params')
    state_dict = checkpoint['state_dict']
    weights = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items() if key.startswith(prefix))
    if not weights:
        raise KeyError(f'The mmengine checkpoint has no weights under {prefix!r} (keys start with '
                       f'{sorted({key.split(".")[0] for key in state_dict})}): is it a Ranker checkpoint?')
    return ranker_state_dict(weights, net, param_key=None)


def check_ranker_checkpoint(path: Optional[str], option: str, train_with: str) -> str:
    """The path of the trained Ranker a RankSRGAN model needs; a clear error naming ``option`` if unusable."""
    if not path:
        raise ValueError(f'RankSRGAN needs {option}: a trained Ranker checkpoint (train one with {train_with}, '
                         'or convert an official one with tools/convert_official_weights.py).')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{option}: Ranker checkpoint {path} does not exist.')
    return path


def checked_ranker_weights(net: nn.Module, checkpoint: Any, path: str, option: str,
                           extract: Callable[[], StateDict], strict: bool = True) -> StateDict:
    """``extract()``: the Ranker weights of a loaded ``checkpoint``, checked to fit ``net`` (with ``strict``).

    A file that is not a Ranker of ``net``'s architecture (another depth, a generator, a VGG19, ...)
    raises ``CheckpointMismatchError`` naming ``path``, ``option`` (the option that named it) and what
    the file holds.
    """
    network = f'{type(net).__name__}(depth={getattr(net, "depth", "?")})'
    try:
        weights = extract()
    except (KeyError, ValueError) as error:
        raise CheckpointMismatchError(f'{path} (named by {option}) is not a Ranker for {network}: {error} The file '
                                      f'is {describe_weights(checkpoint)}.') from None
    if strict:
        check_weights_fit(net.state_dict(), weights, path, option, checkpoint, network)
    return weights


def load_ranker(net: RankerVGG, path: str, param_key: Optional[str] = 'params', strict: bool = True,
                option: str = 'the Ranker checkpoint', checkpoint: Any = None) -> RankerVGG:
    """Load a BasicSR or official Ranker checkpoint (plugin, original mmsr or older ``features.N`` layout) into
    ``net``; a file that does not fit is refused by name (:func:`checked_ranker_weights`).

    ``checkpoint``: the file's content when the caller has read it already (e.g. for its record).
    """
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    weights = checked_ranker_weights(net, checkpoint, path, option,
                                     lambda: ranker_state_dict(checkpoint, net, param_key), strict)
    net.load_state_dict(weights, strict=strict)
    return net


def load_ranker_checkpoint(net: nn.Module, path: str, prefix: str = MMENGINE_RANKER_PREFIX,
                           option: str = 'model.ranker_checkpoint', checkpoint: Optional[Any] = None) -> nn.Module:
    """Load a Ranker checkpoint of any layout of the module docstring into ``net`` (strict: every key must match).

    A file that is not a Ranker of ``net``'s architecture raises ``CheckpointMismatchError`` naming
    ``path``, ``option`` and what the file holds (:func:`checked_ranker_weights`).
    ``checkpoint``: the file's content when the caller has read it already (e.g. for its record).
    """
    checkpoint = read_ranker_file(path) if checkpoint is None else checkpoint
    weights = checked_ranker_weights(net, checkpoint, path, option, lambda: ranker_weights(checkpoint, net, prefix))
    net.load_state_dict(weights, strict=True)
    return net


def export_ranker_for_basicsr(src: str, dst: str, prefix: str = MMENGINE_RANKER_PREFIX,
                              ranker: Optional[nn.Module] = None) -> str:
    """Write the Ranker of an MMagic (mmengine) checkpoint as a BasicSR checkpoint ``{'params': state_dict}``.

    The result loads with :func:`load_ranker` and as ``path.pretrain_network_r`` of the BasicSR options.
    ``ranker`` (default: VGG-12) is only needed to convert the older ``features.N`` layout; the weights
    are checked against it when given. The source's ``ranker_record`` (metric, direction, rank set:
    :mod:`ranksrgan_plugin.rank_content.ranker_record`) goes along, beside ``params``.
    """
    from ..rank_content.ranker_record import RECORD_KEY, read_ranker_record  # here: rank_content imports this package

    checkpoint = read_ranker_file(src)
    net = ranker if ranker is not None else RankerVGG()
    weights = ranker_weights(checkpoint, net, prefix)
    if ranker is not None:
        ranker.load_state_dict(weights, strict=True)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    exported: Dict[str, Any] = {'params': OrderedDict((k, v.cpu()) for k, v in weights.items())}
    record = read_ranker_record(checkpoint)
    if record is not None:
        exported[RECORD_KEY] = record
    save_torch_atomically(exported, dst)
    return dst
