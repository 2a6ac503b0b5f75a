"""Ranker checkpoints across the two sides: BasicSR / official files into MMagic models, MMagic ones out to BasicSR.

Layouts read by :func:`ranker_weights`:
    - mmengine (a checkpoint written by MMagic's Runner, e.g. of :class:`~.ranker_model.RankerModel`):
      ``{'meta': ..., 'state_dict': {'ranker.<name>': tensor, ...}, ...}``;
    - BasicSR (the plugin's ``net_r_<iter>.pth``): ``{'params': state_dict}``;
    - the official releases (mmsr ``conv0_0 ...`` or the older ``features.N``), bare state_dicts.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from ..archs.ranker_arch import RankerVGG, checked_ranker_weights, ranker_state_dict
from ..compat.mmagic import mmengine_checkpoint_globals
from ..models.ranker_record import RECORD_KEY, read_ranker_record
from ..utils import checkpoint as checkpoint_io

MMENGINE_RANKER_PREFIX = 'ranker.'


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Load a checkpoint file on the CPU without running arbitrary pickled code (``weights_only``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Ranker checkpoint {path} does not exist.')
    # mmengine checkpoints also hold the training log (HistoryBuffers, numpy values): allow exactly those
    return checkpoint_io.read_checkpoint(path, mmengine_checkpoint_globals())


def is_mmengine_checkpoint(checkpoint: Mapping[str, Any]) -> bool:
    """True for a checkpoint saved by mmengine's Runner (weights under ``state_dict``)."""
    return isinstance(checkpoint.get('state_dict'), Mapping)


def ranker_weights(checkpoint: Mapping[str, Any], net: nn.Module,
                   prefix: str = MMENGINE_RANKER_PREFIX) -> Dict[str, torch.Tensor]:
    """The Ranker's state_dict held by a checkpoint of any layout of the module docstring."""
    if not is_mmengine_checkpoint(checkpoint):
        return ranker_state_dict(checkpoint, net, 'params')
    state_dict = checkpoint['state_dict']
    weights = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items() if key.startswith(prefix))
    if not weights:
        raise KeyError(f'The mmengine checkpoint has no weights under {prefix!r} (keys start with '
                       f'{sorted({key.split(".")[0] for key in state_dict})}): is it a Ranker checkpoint?')
    return ranker_state_dict(weights, net, param_key=None)


def load_ranker_checkpoint(net: nn.Module, path: str, prefix: str = MMENGINE_RANKER_PREFIX,
                           option: str = 'model.ranker_checkpoint', checkpoint: Optional[Any] = None) -> nn.Module:
    """Load a Ranker checkpoint of any supported layout into ``net`` (strict: every key must match).

    A file that is not a Ranker of ``net``'s architecture raises ``CheckpointMismatchError`` naming
    ``path``, ``option`` and what the file holds (:func:`~ranksrgan_plugin.archs.ranker_arch.checked_ranker_weights`).
    ``checkpoint``: the file's content when the caller has read it already (e.g. for its record).
    """
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    weights = checked_ranker_weights(net, checkpoint, path, option, lambda: ranker_weights(checkpoint, net, prefix))
    net.load_state_dict(weights, strict=True)
    return net


def export_ranker_for_basicsr(src: str, dst: str, prefix: str = MMENGINE_RANKER_PREFIX,
                              ranker: Optional[nn.Module] = None) -> str:
    """Write the Ranker of an MMagic (mmengine) checkpoint as a BasicSR checkpoint ``{'params': state_dict}``.

    The result loads with ``ranksrgan_plugin.archs.load_ranker`` and as ``path.pretrain_network_r`` of
    the BasicSR options. ``ranker`` (default: VGG-12) is only needed to convert the older
    ``features.N`` layout; the weights are checked against it when given. The source's ``ranker_record``
    (metric, direction, rank set: :mod:`ranksrgan_plugin.models.ranker_record`) goes along, beside ``params``.
    """
    checkpoint = read_checkpoint(src)
    net = ranker if ranker is not None else RankerVGG()
    weights = ranker_weights(checkpoint, net, prefix)
    if ranker is not None:
        ranker.load_state_dict(weights, strict=True)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    exported: Dict[str, Any] = {'params': OrderedDict((k, v.cpu()) for k, v in weights.items())}
    record = read_ranker_record(checkpoint)
    if record is not None:
        exported[RECORD_KEY] = record
    torch.save(exported, dst)
    return dst
