"""RankSRGAN and RankESRGAN for MMagic: its SRGAN / ESRGAN plus a frozen Ranker and the rank-content loss."""
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from mmagic.models.editors.esrgan import ESRGAN
from mmagic.models.editors.srgan import SRGAN
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.logging import MessageHub, print_log
from mmengine.model.weight_init import initialize
from torch import nn

from ..archs.ranker_arch import check_ranker_checkpoint, freeze_ranker
from ..compat.mmagic import honour_perceptual_pretrained
from ..losses.loss_options import check_rank_content_options
from ..models.frozen_rankers import check_ranker_name, check_unique_names
from ..models.ranker_monitor import build_monitors, monitor_settings, uses_batch_statistics
from ..models.ranker_record import check_ranker_direction, read_ranker_record
from ..utils.built_options import check_built_options, init_keywords
from ..utils.option_keys import refuse_unknown_keys
from .checkpoints import load_ranker_checkpoint, read_checkpoint
from .output_scale import check_outputs_fit_gt
from .strict_init import StrictGeneratorLoading, check_model_init_file, strict_generator_init

DEFAULT_RANK_LOSS = dict(type='RankContentLoss', loss_weight=0.03)


class FrozenNetwork:
    """A Ranker held outside its owner's module tree: frozen (see ``freeze_ranker``), never saved or trained.

    Not being an ``nn.Module`` attribute, the network is invisible to ``state_dict`` (so to
    mmengine's checkpoints), ``parameters`` (so to optimiser wrappers), ``train()`` and DDP wrapping.
    Its owner moves it with itself (see ``RankContentMixin._apply``).
    """

    def __init__(self, net: nn.Module, batchnorm: str = 'batch') -> None:
        self.batchnorm = batchnorm
        self.net = freeze_ranker(net, batchnorm)

    def refreeze(self) -> None:
        """Restore the frozen modes (after the owner's ``train()``/``eval()``)."""
        freeze_ranker(self.net, self.batchnorm)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


RANKER_ITEM_KEYS = ('name', 'ranker', 'ranker_checkpoint', 'rank_loss', 'ranker_batchnorm')


def build_frozen_ranker(ranker: Dict[str, Any], ranker_checkpoint: Optional[str], batchnorm: str = 'batch',
                        option: str = 'model.ranker_checkpoint', rank_loss: Optional[nn.Module] = None,
                        loss_option: str = 'model.rank_loss') -> FrozenNetwork:
    """Build the Ranker from its config and load a trained checkpoint (required; ``option`` names it in errors).

    A file that records its training (:mod:`ranksrgan_plugin.models.ranker_record`) is first checked against
    ``rank_loss`` (``loss_option`` names it): a contradicting ``higher_is_better`` is refused.
    """
    check_ranker_checkpoint(ranker_checkpoint, option, 'options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-niqe.py')
    checkpoint = read_checkpoint(ranker_checkpoint)
    direction = check_ranker_direction(read_ranker_record(checkpoint), rank_loss, loss_option, ranker_checkpoint,
                                       option)
    net = MODELS.build(ranker)
    load_ranker_checkpoint(net, ranker_checkpoint, option=option, checkpoint=checkpoint)
    print_log(f'Frozen Ranker {type(net).__name__} loaded from {ranker_checkpoint} '
              f'(BatchNorm: {batchnorm} statistics); {direction}.', logger='current')
    return FrozenNetwork(net, batchnorm)


def ranker_entries(ranker: Optional[Dict[str, Any]], ranker_checkpoint: Optional[str],
                   rank_loss: Optional[Dict[str, Any]], ranker_batchnorm: str,
                   rankers: Optional[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """``[{name, ranker, checkpoint, rank_loss, batchnorm, option, loss_option}]``: ``''`` for the single
    ``ranker``, else one per ``rankers`` item (``dict(name, ranker, ranker_checkpoint, rank_loss,
    ranker_batchnorm)``); every block's keys checked, by the name it has in the config."""
    if rankers and ranker:
        raise ValueError('RankSRGAN takes ranker (one Ranker) or rankers (a list), not both.')
    if not rankers:
        if ranker is None:
            raise ValueError('RankSRGAN needs ranker=dict(type=\'RankerVGG\', ...) and ranker_checkpoint, or rankers.')
        return [_entry('', ranker, ranker_checkpoint, rank_loss, ranker_batchnorm, 'model.ranker',
                       'model.ranker_checkpoint', 'model.rank_loss')]
    single = {'ranker_checkpoint': ranker_checkpoint is not None, 'rank_loss': rank_loss is not None,
              'ranker_batchnorm': ranker_batchnorm != 'batch'}
    given = [key for key, set_ in single.items() if set_]
    if given:
        raise ValueError(f'model.{", model.".join(given)}: not read with model.rankers (each Ranker takes its own: '
                         f'{", ".join("model.rankers[i]." + key for key in given)}); move it into the rankers items.')
    check_unique_names(rankers)
    entries = []
    for index, item in enumerate(rankers):
        where = f'model.rankers[{index}]'
        if not isinstance(item, Mapping):
            raise ValueError(f'{where} must be a dict (name, ranker, ranker_checkpoint, ...), got {item!r}.')
        refuse_unknown_keys(item, RANKER_ITEM_KEYS, where)
        if 'ranker' not in item:
            raise ValueError(f'{where} needs name and ranker, and takes ranker_checkpoint, rank_loss, '
                             f'ranker_batchnorm; got {sorted(item)}.')
        check_ranker_name(item.get('name'), where)
        entries.append(_entry(item['name'], item['ranker'], item.get('ranker_checkpoint'), item.get('rank_loss'),
                              item.get('ranker_batchnorm', 'batch'), f'{where}.ranker', f'{where}.ranker_checkpoint',
                              f'{where}.rank_loss'))
    return entries


def _entry(name: str, ranker: Any, checkpoint: Optional[str], rank_loss: Optional[Dict[str, Any]], batchnorm: str,
           ranker_option: str, option: str, loss_option: str) -> Dict[str, Any]:
    check_built_options(ranker, ranker_option, MODELS, 'model', 'RankerVGG')
    rank_loss = rank_loss or DEFAULT_RANK_LOSS
    check_rank_content_options(rank_loss, loss_option, MODELS)
    return {'name': name, 'ranker': ranker, 'checkpoint': checkpoint, 'rank_loss': rank_loss,
            'batchnorm': batchnorm, 'option': option, 'loss_option': loss_option}


class RankContentMixin(StrictGeneratorLoading):
    """Adds the frozen *Ranker* and the *rank-content loss* to an MMagic GAN editor (SRGAN, ESRGAN).

    The generator's step gets ``loss_rank`` = rank-content loss of the Ranker's scores of the
    generator's output; the log also shows ``rank_score``, the batch's mean Ranker score. With
    ``rankers`` (several Rankers, the journal version's idea): ``loss_rank_<name>`` and
    ``rank_score_<name>`` for each.

    ``ranker_monitor`` (dict, optional): the Ranker-exploitation monitor, on by default (it does not change
    training): on one step in ``every`` the Ranker also scores the batch's GT (``gt_rank_score``) and the log
    shows ``rank_beats_gt``, the share of outputs scored better than their GT by more than ``margin`` (0.5);
    one warning per ``period`` (5000, MMagic's SRGAN validation interval) when that share averaged
    ``share_limit`` (0.5) or more. Keys:
    ``enabled``, ``margin``, ``share_limit``, ``every`` (10: about 1% of a step; the logged values are then
    mmengine's window mean over the last 100 monitored steps), ``period``; see
    :mod:`ranksrgan_plugin.models.ranker_monitor`.

    Every keyword and block (``ranker``, ``rank_loss``, ``rankers`` items, ``ranker_monitor``) refuses a key it
    does not know, with the closest valid name. A Ranker file that records its training
    (:mod:`ranksrgan_plugin.models.ranker_record`) is checked against its rank-content loss's ``higher_is_better``.
    """

    def __init__(self, *, ranker: Optional[Dict[str, Any]] = None, ranker_checkpoint: Optional[str] = None,
                 rank_loss: Optional[Dict[str, Any]] = None, ranker_batchnorm: str = 'batch',
                 rankers: Optional[List[Dict[str, Any]]] = None, perceptual_loss: Optional[Dict[str, Any]] = None,
                 ranker_monitor: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        refuse_unknown_keys(kwargs, init_keywords(type(self)) or (), f'model ({type(self).__name__})')
        monitoring = monitor_settings(ranker_monitor, 10, 5000, 'model.ranker_monitor')
        entries = ranker_entries(ranker, ranker_checkpoint, rank_loss, ranker_batchnorm, rankers)
        rank_losses = {entry['name']: MODELS.build(entry['rank_loss']) for entry in entries}
        frozen = {entry['name']: build_frozen_ranker(entry['ranker'], entry['checkpoint'], entry['batchnorm'],
                                                     entry['option'], rank_losses[entry['name']], entry['loss_option'])
                  for entry in entries}
        perceptual_loss, vgg_weights = honour_perceptual_pretrained(perceptual_loss)
        generator = dict(kwargs.pop('generator'))
        generator_init = strict_generator_init(generator.pop('init_cfg', None))
        with vgg_weights:
            super().__init__(generator=generator, perceptual_loss=perceptual_loss, **kwargs)
        # applied by init_weights after the generator's own: MMagic's MSRResNet takes no init_cfg (and its
        # init_weights would ignore one)
        self._generator_init = generator_init
        self._frozen_rankers = frozen
        self._rank_losses = rank_losses
        if '' in frozen:  # the paper's single Ranker, under today's name
            self.rank_loss = self._rank_losses['']
        self._ranker_monitors = build_monitors(
            list(frozen), monitoring,
            {name: getattr(loss, 'sign', 1.0) for name, loss in self._rank_losses.items()})
        self._output_channel_order: Optional[str] = None

    @property
    def ranker(self) -> nn.Module:
        """The frozen Ranker (not a submodule: see :class:`FrozenNetwork`); with ``rankers``, see :attr:`rankers`."""
        if '' not in self._frozen_rankers:
            raise AttributeError('This model has several Rankers: use .rankers[name].')
        return self._frozen_rankers[''].net

    @property
    def rankers(self) -> Dict[str, nn.Module]:
        """``{name: frozen Ranker}`` (``''`` for the single one)."""
        return {name: frozen.net for name, frozen in self._frozen_rankers.items()}

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> 'RankContentMixin':
        # .to() / .cuda() / .half() of the model move the Ranker too (once it is set: not during __init__)
        super()._apply(fn, *args, **kwargs)
        for frozen in self.__dict__.get('_frozen_rankers', {}).values():
            frozen.net._apply(fn)
        return self

    def init_weights(self) -> None:
        """mmengine's initialisation, a model-level ``Pretrained`` file checked first, then the generator's
        ``init_cfg`` (``Pretrained`` made strict: see :mod:`.strict_init`)."""
        check_model_init_file(self.generator, self.init_cfg)
        super().init_weights()
        if self._generator_init:
            initialize(self.generator, self._generator_init)

    def train(self, mode: bool = True) -> 'RankContentMixin':
        """As ``nn.Module.train``; the Ranker keeps its frozen modes whatever ``mode`` is."""
        super().train(mode)
        for frozen in self._frozen_rankers.values():
            frozen.refreeze()
        return self

    def forward_tensor(self, inputs: torch.Tensor, data_samples: Optional[DataSample] = None,
                       **kwargs: Any) -> torch.Tensor:
        """Upstream's generator pass; outputs of another size than their GT refused (:func:`check_outputs_fit_gt`)."""
        outputs = super().forward_tensor(inputs, data_samples, **kwargs)
        check_outputs_fit_gt(inputs, outputs, data_samples, self.generator)
        return outputs

    def extract_gt_data(self, data_samples: DataSample) -> torch.Tensor:
        """Upstream's GT extraction; also notes the channel order of this batch's generator outputs."""
        order = data_samples.metainfo.get('img_output_channel_order')
        order = order[0] if isinstance(order, (list, tuple)) else order
        self._output_channel_order = order.upper() if isinstance(order, str) else None
        return super().extract_gt_data(data_samples)

    def ranker_inputs(self, batch_outputs: torch.Tensor) -> torch.Tensor:
        """Generator outputs (the data preprocessor's normalised space) as the Ranker takes them: RGB in [0, 1].

        The channel order is the batch's (``img_output_channel_order`` of its metainfo, noted by
        ``extract_gt_data``); unknown is taken as RGB, which MMagic's SR pipelines load.
        """
        preprocessor = self.data_preprocessor
        images = batch_outputs
        if getattr(preprocessor, '_enable_normalize', False):
            images = (images * preprocessor.std.view(1, -1, 1, 1) + preprocessor.mean.view(1, -1, 1, 1)) / 255.
        if self._output_channel_order == 'BGR':
            images = images.flip(1)
        elif self._output_channel_order not in (None, 'RGB'):
            raise ValueError(f'The Ranker takes RGB images; the generator outputs {self._output_channel_order}.')
        return images

    def g_step(self, batch_outputs: torch.Tensor, batch_gt_data: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Upstream's generator losses plus ``loss_rank`` (and ``rank_score``, logged, not a loss)."""
        losses = super().g_step(batch_outputs, batch_gt_data)
        inputs = self.ranker_inputs(batch_outputs)
        iteration = self._current_iteration()
        monitored = [name for name, monitor in self._ranker_monitors.items() if monitor.due(iteration)]
        gt_inputs = self.ranker_inputs(batch_gt_data) if monitored else None
        for name, frozen in self._frozen_rankers.items():
            suffix = f'_{name}' if name else ''
            scores = frozen(inputs).float()  # the loss on fp32 values (AMP)
            losses[f'loss_rank{suffix}'] = self._rank_losses[name](scores)
            losses[f'rank_score{suffix}'] = scores.detach().mean()
            if name in monitored:
                measured = self._ranker_monitors[name].measure(frozen, gt_inputs, inputs, scores,
                                                               uses_batch_statistics(frozen.net))
                losses[f'gt_rank_score{suffix}'] = measured[f'gt_r{suffix}']
                losses[f'rank_beats_gt{suffix}'] = measured[f'out_beats_gt{suffix}']
        for monitor in self._ranker_monitors.values():
            warning = monitor.end_of_period(iteration)
            if warning:
                print_log(warning, logger='current', level=logging.WARNING)
        return losses

    def _current_iteration(self) -> int:
        """The runner's iteration, counted from 1 (MMagic's ``step_counter`` restarts at 0 on resume)."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        return int(self.step_counter) + 1 if iteration is None else int(iteration) + 1


@MODELS.register_module()
class RankSRGAN(RankContentMixin, SRGAN):
    """RankSRGAN (Zhang et al., ICCV 2019): MMagic's SRGAN whose generator also minimises the *rank-content loss*.

    The *Ranker* is built from ``ranker`` and loaded from ``ranker_checkpoint`` (required: a BasicSR
    ``{'params': ...}`` file, an official release, or an MMagic :class:`RankerModel` checkpoint). It
    is frozen (``requires_grad=False``, BatchNorm as ``ranker_batchnorm`` says) and held outside the
    module tree, so it is never trained, never wrapped by DDP, never given to an optimiser and never
    saved in checkpoints: a RankSRGAN checkpoint is an SRGAN checkpoint, and resuming reloads the
    Ranker from its path.

    Args:
        ranker (dict): Config of the Ranker, e.g. ``dict(type='RankerVGG', depth=12)``.
        ranker_checkpoint (str): Path of the trained Ranker.
        rank_loss (dict): Config of the rank-content loss. Default: ``RankContentLoss`` weight 0.03
            (summed over the total batch, as the original).
        ranker_batchnorm (str): ``'batch'`` (the original's: the Ranker's BatchNorm uses each
            generator batch's statistics) or ``'running'`` (eval mode). Default: 'batch'.
        perceptual_loss (dict, optional): MMagic's PerceptualLoss; its ``pretrained`` is honoured
            ('torchvision://vgg19': the ImageNet file on disk, else a clear error saying where to put
            it; a path; None: random weights, for tests).
        Other args: as MMagic's SRGAN (generator, discriminator, gan_loss, pixel_loss, train_cfg, ...).
    """


@MODELS.register_module()
class RankESRGAN(RankContentMixin, ESRGAN):
    """RankESRGAN: MMagic's ESRGAN (relativistic GAN, RRDBNet) with the frozen Ranker and rank-content loss.

    Same extra arguments and guarantees as :class:`RankSRGAN`.
    """
