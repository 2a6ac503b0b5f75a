"""RankSRGAN and RankESRGAN for MMagic: its SRGAN / ESRGAN plus a frozen Ranker and the rank-content loss."""
import logging
from typing import Any, Callable, Dict, List, Optional

import torch
from mmagic.models.editors.esrgan import ESRGAN
from mmagic.models.editors.srgan import SRGAN
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.logging import MessageHub, print_log
from mmengine.model.weight_init import initialize
from torch import nn

from ..archs.ghost_batchnorm import check_group_size, group_batchnorms
from ..checkpoints import is_mmengine_checkpoint, load_ranker, load_ranker_checkpoint, read_ranker_file
from ..compat.mmagic import honour_perceptual_pretrained
from ..rank_content import (
    RankContent,
    RankerSpec,
    Registries,
    Toolbox,
    load_frozen_ranker,
    monitor_settings,
    ranker_specs,
)
from ..utils.built_options import init_keywords
from ..utils.option_keys import refuse_unknown_keys
from .output_scale import check_outputs_fit_gt
from .strict_init import StrictGeneratorLoading, check_model_init_file, strict_generator_init


def _load_weights(net: nn.Module, spec: RankerSpec, checkpoint: Any) -> None:
    """A Ranker file's weights into ``net``: mmengine's (a :class:`~.ranker_model.RankerModel` checkpoint, read
    strictly under ``ranker.``), or BasicSR's and the authors' layouts (``param_key``, ``strict``)."""
    if not is_mmengine_checkpoint(checkpoint):
        load_ranker(net, spec.path, spec.param_key, spec.strict, spec.option('path'), checkpoint)
        return
    if (spec.param_key, spec.strict) != ('params', True):
        raise ValueError(f"{spec.option('path')}: {spec.path} is an mmengine checkpoint, whose Ranker is read "
                         f"strictly under 'ranker.': leave out {spec.option('param_key')} and "
                         f"{spec.option('strict')} (they are for BasicSR-layout files).")
    load_ranker_checkpoint(net, spec.path, option=spec.option('path'), checkpoint=checkpoint)


MMAGIC_TOOLBOX = Toolbox(
    Registries(MODELS, MODELS, 'model', prefix='model.'), MODELS.build, MODELS.build, read_ranker_file, _load_weights,
    lambda message: print_log(message, logger='current'), 'options/mmagic/ranker_vgg12_1xb16-400k_rank-df2k-niqe.py',
    'loss_rank')


def mmagic_single_ranker(ranker: Any, ranker_checkpoint: Any, rank_loss: Any, ranker_batchnorm: Any) -> Dict[str, Any]:
    """The options of the paper's single Ranker (``model.ranker`` ...), by the keys of a ``rankers`` item."""
    return {'network': ('model.ranker', ranker), 'path': ('model.ranker_checkpoint', ranker_checkpoint),
            'rank_opt': ('model.rank_loss', rank_loss), 'batchnorm': ('model.ranker_batchnorm', ranker_batchnorm)}


def build_frozen_ranker(ranker: Dict[str, Any], ranker_checkpoint: Optional[str], batchnorm: str = 'batch',
                        option: str = 'model.ranker_checkpoint', rank_loss: Optional[nn.Module] = None,
                        loss_option: str = 'model.rank_loss') -> nn.Module:
    """The single Ranker of a config, built, loaded from ``ranker_checkpoint`` (``option`` names it in errors) and
    frozen, as RankSRGAN loads it: a file that records its training is checked against ``rank_loss`` first."""
    spec = RankerSpec('', ranker, ranker_checkpoint, {}, batchnorm,
                      options={'network': 'model.ranker', 'path': option, 'rank_opt': loss_option})
    return load_frozen_ranker(spec, rank_loss, MMAGIC_TOOLBOX)


class RankContentMixin(StrictGeneratorLoading):
    """Adds the frozen *Ranker* and the *rank-content loss* to an MMagic GAN editor (SRGAN, ESRGAN).

    The generator's step gets ``loss_rank`` = rank-content loss of the Ranker's scores of the
    generator's output; the log also shows ``out_r``, the batch's mean Ranker score (BasicSR's log entries,
    but for the loss: MMagic sums every entry with ``loss`` in its name into the generator's loss). With
    ``rankers`` (several Rankers, the journal version's idea; each item
    ``dict(name, network, path, rank_opt, batchnorm)``, the keys of BasicSR's ``rankers:`` items,
    :mod:`ranksrgan_plugin.rank_content.specs`): ``loss_rank_<name>`` and ``out_r_<name>`` for each.

    ``ranker_monitor`` (dict, optional): the Ranker-exploitation monitor, on by default (it does not change
    training): on one step in ``every`` the Ranker also scores the batch's GT (``gt_r``) and the log
    shows ``out_beats_gt``, the share of outputs scored better than their GT by more than ``margin`` (0.5);
    one warning per ``period`` (5000, MMagic's SRGAN validation interval) when that share averaged
    ``share_limit`` (0.5) or more. Keys:
    ``enabled``, ``margin``, ``share_limit``, ``every`` (10: about 1% of a step; the logged values are then
    mmengine's window mean over the last 100 monitored steps), ``period``; see
    :mod:`ranksrgan_plugin.rank_content.monitor`.

    The Rankers, their losses and monitors are one :class:`~ranksrgan_plugin.rank_content.RankContent`
    (``rank_content``: not a module, so the Rankers are outside the module tree), the same object as BasicSR's
    ``RankSRGANModel`` holds; :attr:`ranker`, :attr:`rankers` and :attr:`rank_loss` read it.

    Every keyword and block (``ranker``, ``rank_loss``, ``rankers`` items, ``ranker_monitor``) refuses a key it
    does not know, with the closest valid name. A Ranker file that records its training
    (:mod:`ranksrgan_plugin.rank_content.ranker_record`) is checked against its rank-content loss's
    ``higher_is_better``.
    """

    def __init__(self, *, ranker: Optional[Dict[str, Any]] = None, ranker_checkpoint: Optional[str] = None,
                 rank_loss: Optional[Dict[str, Any]] = None, ranker_batchnorm: str = 'batch',
                 rankers: Optional[List[Dict[str, Any]]] = None, perceptual_loss: Optional[Dict[str, Any]] = None,
                 ranker_monitor: Optional[Dict[str, Any]] = None, batchnorm_group: Optional[int] = None,
                 **kwargs: Any) -> None:
        refuse_unknown_keys(kwargs, init_keywords(type(self)) or (), f'model ({type(self).__name__})')
        monitoring = monitor_settings(ranker_monitor, 10, 5000, 'model.ranker_monitor')
        check_group_size(batchnorm_group, 'model.batchnorm_group')
        single = mmagic_single_ranker(ranker, ranker_checkpoint, rank_loss, ranker_batchnorm)
        specs = ranker_specs(single, rankers, MMAGIC_TOOLBOX.registries)  # every block checked before any build
        # every attribute set before the module's own __init__ (a plain attribute: never a submodule), so that
        # _apply / train() of any time find them
        self.rank_content = RankContent.build(specs, monitoring, MMAGIC_TOOLBOX)
        self._output_channel_order: Optional[str] = None
        perceptual_loss, vgg_weights = honour_perceptual_pretrained(perceptual_loss)
        generator = dict(kwargs.pop('generator'))
        # applied by init_weights after the generator's own: MMagic's MSRResNet takes no init_cfg (and its
        # init_weights would ignore one)
        self._generator_init = strict_generator_init(generator.pop('init_cfg', None))
        with vgg_weights:
            super().__init__(generator=generator, perceptual_loss=perceptual_loss, **kwargs)
        discriminator = {} if self.discriminator is None else {'discriminator': self.discriminator}
        MMAGIC_TOOLBOX.log(group_batchnorms({**discriminator, **self.rank_content.labelled_networks},
                                            batchnorm_group, 'model.batchnorm_group'))

    @property
    def ranker(self) -> nn.Module:
        """The frozen Ranker (not a submodule: see :class:`~ranksrgan_plugin.rank_content.RankContent`); with
        ``rankers``, see :attr:`rankers`."""
        return self.rank_content.single('ranker').net

    @property
    def rankers(self) -> Dict[str, nn.Module]:
        """``{name: frozen Ranker}`` (``''`` for the single one)."""
        return self.rank_content.networks

    @property
    def rank_loss(self) -> nn.Module:
        """The single Ranker's rank-content loss; with ``rankers``, ``rank_content.rankers[name].loss``."""
        return self.rank_content.single('rank_loss').loss

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> 'RankContentMixin':
        # .to() / .cuda() / .half() of the model move the Rankers too
        super()._apply(fn, *args, **kwargs)
        self.rank_content.apply(fn)
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
        self.rank_content.refreeze()
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
        """Upstream's generator losses plus ``loss_rank`` (and ``out_r``, logged, not a loss; the monitor's
        ``gt_r`` / ``out_beats_gt`` on monitored steps)."""
        losses = super().g_step(batch_outputs, batch_gt_data)
        iteration = self._current_iteration()
        gt = self.ranker_inputs(batch_gt_data) if self.rank_content.monitoring(iteration) else None
        losses.update(self.rank_content.losses(self.ranker_inputs(batch_outputs), gt, iteration))
        for warning in self.rank_content.period_warnings(iteration):
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
        rankers (list[dict], optional): Several Rankers instead of ``ranker`` (whose four arguments are then
            None, or ``ranker_batchnorm`` its default): ``dict(name, network, path, rank_opt, batchnorm)`` each,
            the keys of BasicSR's ``rankers:`` items (:mod:`ranksrgan_plugin.rank_content.specs`).
        ranker_monitor (dict, optional): The Ranker-exploitation monitor (see :class:`RankContentMixin`).
        batchnorm_group (int, optional): The images per BatchNorm statistics in the frozen Rankers and the
            discriminator (the original's per-GPU batch: 4 of 8 on its 2 GPUs; the paper configs set 4). Default:
            None, each process's batch (:mod:`ranksrgan_plugin.archs.ghost_batchnorm`).
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
