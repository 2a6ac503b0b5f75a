"""The generator's initialisation and test checkpoints, loaded strictly on the MMagic side.

mmengine loads checkpoints with ``strict=False``: the wrong file (a BasicSR ``params`` file, a
Ranker, a checkpoint of another network) leaves the generator with random weights and only a
warning among the key lists every correct run also prints. Here:

- ``StrictPretrained`` (``generator.init_cfg``, MMagic's ``Pretrained`` arguments): every weight of
  the generator must be in the file with its shape, else :class:`CheckpointMismatchError` naming the
  file, ``model.generator.init_cfg.checkpoint`` and what the file holds; a fitting file loads with no
  key-mismatch lines. RankSRGAN / RankESRGAN turn a generator ``Pretrained`` into it.
- :func:`check_model_init_file`: a model-level ``init_cfg`` ``Pretrained`` file must hold the whole
  generator under ``generator.``.
- :class:`StrictGeneratorLoading` (RankSRGAN, RankESRGAN, :class:`StrictEditModel` of the test configs):
  any state_dict loaded into the whole model (``load_from``, ``tools/test.py``'s checkpoint,
  ``--resume``) must hold the whole generator (:func:`check_generator_in_state_dict`).
"""
from typing import Any, Mapping, Optional

from mmagic.models import BaseEditModel
from mmagic.registry import MODELS
from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from ..compat.mmagic import mmengine_checkpoint_globals
from ..utils.checkpoint import read_checkpoint, unwrap_state_dict
from ..utils.checkpoint_fit import CheckpointMismatchError, check_weights_fit

GENERATOR_PREFIX = 'generator.'
GENERATOR_INIT_OPTION = 'model.generator.init_cfg.checkpoint'


def weights_under(checkpoint: Mapping[str, Any], prefix: Optional[str]) -> Mapping[str, Any]:
    """The ``prefix`` keys (stripped) of an mmengine checkpoint's state_dict; without a prefix, the weights of
    any checkpoint (mmengine's ``state_dict``, BasicSR's ``params``, a bare state_dict)."""
    if not isinstance(checkpoint, Mapping):
        return {}
    if not prefix:
        return unwrap_state_dict(checkpoint, wrappers=('state_dict', 'params', 'params_ema'))
    state = checkpoint.get('state_dict', checkpoint)
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def read_file(path: str, option: str) -> Any:
    try:
        return read_checkpoint(path, mmengine_checkpoint_globals())
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} (named by {option}) does not exist.') from None


@WEIGHT_INITIALIZERS.register_module()
class StrictPretrained:
    """mmengine's ``Pretrained`` initialisation that refuses a file whose weights do not all fit the module.

    Args:
        checkpoint (str): the file (an mmengine checkpoint, or a bare state_dict).
        prefix (str, optional): the keys of the file to take, e.g. ``'generator.'``.
        map_location (str): kept for ``Pretrained``'s signature; weights are read on the CPU.
        option (str): what the error messages call the option naming the file.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None, map_location: str = 'cpu',
                 option: str = GENERATOR_INIT_OPTION) -> None:
        self.checkpoint, self.prefix, self.option = checkpoint, prefix, option

    def __call__(self, module: nn.Module) -> None:
        loaded = read_file(self.checkpoint, self.option)
        weights = weights_under(loaded, self.prefix)
        check_weights_fit(module.state_dict(), weights, self.checkpoint, self.option, loaded,
                          f'the {type(module).__name__}' + (f' (keys {self.prefix}*)' if self.prefix else ''))
        module.load_state_dict({key: weights[key] for key in module.state_dict()}, strict=True)
        print_log(f'{type(module).__name__} initialised from {self.checkpoint}'
                  + (f' ({self.prefix}*)' if self.prefix else ''), logger='current')

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'


def strict_generator_init(init_cfg: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """A generator ``init_cfg`` with MMagic's ``Pretrained`` made :class:`StrictPretrained`; others unchanged."""
    if not init_cfg:
        return None
    init_cfg = dict(init_cfg)
    if init_cfg.get('type') == 'Pretrained':
        init_cfg['type'] = 'StrictPretrained'
    return init_cfg


def check_model_init_file(generator: nn.Module, init_cfg: Optional[Mapping[str, Any]]) -> None:
    """A model-level ``Pretrained`` file must hold the whole generator under ``generator.``."""
    if not init_cfg or init_cfg.get('type') != 'Pretrained':
        return
    option = 'model.init_cfg.checkpoint'
    loaded = read_file(init_cfg['checkpoint'], option)
    prefix = (init_cfg.get('prefix') or '') + GENERATOR_PREFIX
    check_weights_fit(generator.state_dict(), weights_under(loaded, prefix), init_cfg['checkpoint'], option, loaded,
                      f'the generator (keys {prefix}*)')


def check_generator_in_state_dict(generator: nn.Module, state_dict: Mapping[str, Any], model: str) -> None:
    """A state_dict loaded into a whole model must hold its whole generator (``generator.*``)."""
    check_weights_fit(generator.state_dict(), weights_under(state_dict, GENERATOR_PREFIX), 'The checkpoint',
                      "load_from / tools/test.py's checkpoint / --resume", state_dict,
                      f'the generator of {model} (keys {GENERATOR_PREFIX}*)')


class StrictGeneratorLoading:
    """Mixin for an MMagic editor: a state_dict loaded into the whole model must hold its whole generator."""

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        if prefix == '':  # the whole model's state_dict (mmengine's and torch's loaders start here)
            check_generator_in_state_dict(self.generator, state_dict, type(self).__name__)
        super()._load_from_state_dict(state_dict, prefix, *args)


@MODELS.register_module()
class StrictEditModel(StrictGeneratorLoading, BaseEditModel):
    """MMagic's ``BaseEditModel`` (the test configs' generator-only model) refusing a checkpoint without its generator.

    MMagic's ``tools/test.py`` given a Ranker's (or any other network's) checkpoint would test a random
    generator and report plausible numbers; this model raises ``CheckpointMismatchError`` naming the file.
    """


__all__ = ['CheckpointMismatchError', 'StrictEditModel', 'StrictGeneratorLoading', 'StrictPretrained',
           'check_generator_in_state_dict', 'check_model_init_file', 'strict_generator_init']
