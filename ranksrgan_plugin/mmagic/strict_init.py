"""The generator's initialisation and test checkpoints, loaded strictly on the MMagic side.

mmengine loads checkpoints with ``strict=False``: the wrong file (a BasicSR ``params`` file, a
Ranker, a checkpoint of another network) leaves the generator with random weights and only a
warning among the key lists every correct run also prints. Here:

- ``StrictPretrained`` (``generator.init_cfg``, MMagic's ``Pretrained`` arguments): every weight of
  the generator must be in the file with its shape, else :class:`CheckpointMismatchError` naming the
  file, ``model.generator.init_cfg.checkpoint`` and what the file holds; a fitting file loads with no
  key-mismatch lines. RankSRGAN / RankESRGAN turn a generator ``Pretrained`` into it. A BasicSR
  ``params`` / ``params_ema`` file is taken where the two toolboxes' networks are the same
  (:func:`generator_weights`: RRDBNet, the plugin's RankSRGANGenerator); BasicSR's MSRResNet is refused,
  saying why (MMagic's MSRResNet has the same weights but another forward).
- :func:`check_model_init_file`: a model-level ``init_cfg`` ``Pretrained`` file must hold the whole
  generator under ``generator.``.
- :class:`StrictGeneratorLoading` (RankSRGAN, RankESRGAN, :class:`StrictEditModel` of the test configs):
  any state_dict loaded into the whole model (``load_from``, ``tools/test.py``'s checkpoint,
  ``--resume``) must hold the whole generator (:func:`check_generator_in_state_dict`).
"""
from typing import Any, Mapping, Optional, Tuple

import torch
from mmagic.models import BaseEditModel
from mmagic.models.editors.esrgan.rrdb_net import RRDBNet
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from ..archs.ranksrgan_generator_arch import RankSRGANGenerator
from ..checkpoints import (
    CheckpointMismatchError,
    basicsr_wrapper,
    check_weights_fit,
    describe_weights,
    read_mmengine_checkpoint,
    strip_module_prefix,
    weights_under,
)
from ..compat.mmagic import GENERIC_LOAD_OPTION
from .output_scale import check_outputs_fit_gt

GENERATOR_PREFIX = 'generator.'
GENERATOR_INIT_OPTION = 'model.generator.init_cfg.checkpoint'
# MMagic generator classes whose BasicSR namesake has the same keys and the same forward (the same output
# for the same weights, tested): a BasicSR file's weights go in as they are
SAME_AS_BASICSR = (RRDBNet, RankSRGANGenerator)
# MMagic generator classes whose BasicSR namesake differs: (keys a BasicSR file of it holds, why it cannot go in)
NOT_AS_BASICSR = {
    'MSRResNet': (('body.0.conv1.weight', 'upconv1.weight'),
                  "BasicSR's MSRResNet applies a LeakyReLU after each pixel shuffle and MMagic's MSRResNet does not: "
                  'the keys map one to one (body.N -> trunk_net.N, upconvN -> upsampleN.upsample_conv), but the same '
                  'weights give another output'),
}


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
        loaded = read_mmengine_checkpoint(self.checkpoint, self.option)
        weights, read = generator_weights(module, loaded, self.checkpoint, self.option, self.prefix)
        module.load_state_dict({key: weights[key] for key in module.state_dict()}, strict=True)
        print_log(f'{type(module).__name__} initialised from {self.checkpoint} ({read})', logger='current')

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'


def generator_weights(module: nn.Module, checkpoint: Any, source: str, option: str,
                      prefix: Optional[str] = GENERATOR_PREFIX) -> Tuple[Mapping[str, Any], str]:
    """(the weights of a loaded ``checkpoint`` for ``module``, checked to fit it; where they were read).

    An mmengine checkpoint gives its ``prefix`` keys (all keys without a prefix). A BasicSR file gives
    its ``params_ema`` (else ``params``) weights when ``module`` is a class the two toolboxes share
    (:data:`SAME_AS_BASICSR`); for MMagic's MSRResNet, or another class, it is refused saying why.

    Raises:
        CheckpointMismatchError: naming ``source``, ``option`` and what the file holds.
    """
    network = f'the {type(module).__name__}'
    wrapper = basicsr_wrapper(checkpoint)
    if wrapper is None:
        weights = weights_under(checkpoint, prefix)
        check_weights_fit(module.state_dict(), weights, source, option, checkpoint,
                          network + (f' (keys {prefix}*)' if prefix else ''))
        return weights, f'keys {prefix}*' if prefix else 'its keys'
    weights = strip_module_prefix(checkpoint[wrapper])
    keys, why = NOT_AS_BASICSR.get(type(module).__name__, ((), None))
    if why and all(key in weights for key in keys):
        raise CheckpointMismatchError(
            f'{source} (named by {option}) is {describe_weights(checkpoint)}, which {network} cannot take: {why}. '
            "Initialise from an MMagic checkpoint of this generator (generator.* keys), or use the plugin's "
            'RankSRGANGenerator / RRDBNet, whose BasicSR files load on both toolboxes.')
    if not isinstance(module, SAME_AS_BASICSR):
        raise CheckpointMismatchError(
            f'{source} (named by {option}) is {describe_weights(checkpoint)}: a BasicSR file is taken only by the '
            f'generators the two toolboxes share (RRDBNet, RankSRGANGenerator), not by {network}. Give an MMagic '
            'checkpoint of this generator (generator.* keys).')
    check_weights_fit(module.state_dict(), weights, source, option, checkpoint, network)
    return weights, f"a BasicSR file: its '{wrapper}' weights"


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
    loaded = read_mmengine_checkpoint(init_cfg['checkpoint'], option)
    prefix = (init_cfg.get('prefix') or '') + GENERATOR_PREFIX
    check_weights_fit(generator.state_dict(), weights_under(loaded, prefix), init_cfg['checkpoint'], option, loaded,
                      f'the generator (keys {prefix}*)')


def check_generator_in_state_dict(generator: nn.Module, state_dict: Mapping[str, Any], model: str) -> None:
    """A state_dict loaded into a whole model must hold its whole generator (``generator.*``)."""
    check_weights_fit(generator.state_dict(), weights_under(state_dict, GENERATOR_PREFIX), 'The checkpoint',
                      GENERIC_LOAD_OPTION, state_dict,
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
    Outputs of another size than their GT (a generator of another factor than the test data's) are refused
    by :func:`~ranksrgan_plugin.mmagic.output_scale.check_outputs_fit_gt`.
    """

    def forward_tensor(self, inputs: torch.Tensor, data_samples: Optional[DataSample] = None,
                       **kwargs: Any) -> torch.Tensor:
        """Upstream's generator pass; outputs of another size than their GT refused."""
        outputs = super().forward_tensor(inputs, data_samples, **kwargs)
        check_outputs_fit_gt(inputs, outputs, data_samples, self.generator)
        return outputs


__all__ = ['CheckpointMismatchError', 'StrictEditModel', 'StrictGeneratorLoading', 'StrictPretrained',
           'check_generator_in_state_dict', 'check_model_init_file', 'generator_weights', 'strict_generator_init']
