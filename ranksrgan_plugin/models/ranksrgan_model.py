"""RankSRGAN in BasicSR: SRGAN plus a frozen Ranker and the rank-content loss."""
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from torch import nn

from ..archs.ghost_batchnorm import check_group_size, group_batchnorms
from ..checkpoints import load_ranker, read_checkpoint
from ..compat.basicsr import check_generator_scale, check_perceptual_weights
from ..rank_content import RankContent, RankerSpec, Registries, Toolbox, monitor_settings, ranker_specs
from .checkpoint_loading import NamedCheckpointLoading
from .training_precision import TrainingPrecision, check_train_options
from .validation_metrics import check_validation_metrics


@MODEL_REGISTRY.register()
class RankSRGANModel(TrainingPrecision, NamedCheckpointLoading, SRGANModel):
    """RankSRGAN (Zhang et al., ICCV 2019): an SRGAN whose generator also minimises the *rank-content loss*.

    Everything of BasicSR's SRGANModel is kept (pixel / perceptual / GAN losses, ``net_d_iters``,
    ``net_d_init_iters``, EMA, any ``network_g``: SRResNet for RankSRGAN, RRDBNet for
    "RankESRGAN"). Added:

    - ``network_r``: the *Ranker*, loaded from ``path.pretrain_network_r`` (required), with
      ``requires_grad=False``, never wrapped in DDP, never saved, and left out of BasicSR's resume
      path rewriting (``frozen_networks``);
    - ``train.ranker_batchnorm``: ``batch`` (default, the original's: the Ranker's BatchNorm uses
      each generator batch's statistics) or ``running`` (eval mode); see ``freeze_ranker``;
    - ``train.batchnorm_group``: the images per BatchNorm statistics in the frozen Rankers and the discriminator
      (the original's per-GPU batch: 4 of 8 on its 2 GPUs; the paper files set 4); null (default): each
      process's batch; see :mod:`ranksrgan_plugin.archs.ghost_batchnorm`;
    - ``train.rank_opt``: the rank-content loss (``type: RankContentLoss``), logged as
      ``l_g_rank`` with the batch's mean Ranker score ``out_r``;
    - ``train.relativistic``: ``true`` for the original's ``gan_type: ragan`` (RankESRGAN): the
      relativistic average GAN of ESRGAN, with the discriminator's two terms in one graph as the
      original (BasicSR's ESRGANModel detaches the other side's mean). Default: false (vanilla);
    - ``train.precision`` / ``channels_last`` / ``nonfinite_limit``: see :mod:`.training_precision`
      (default fp32, as the original);
    - ``rankers``: several frozen Rankers instead of ``network_r`` (each its own rank-content loss, logged
      as ``l_g_rank_<name>`` / ``out_r_<name>``): see :mod:`ranksrgan_plugin.rank_content.specs`;
    - ``train.ranker_monitor``: the Ranker-exploitation monitor (on by default; it does not change training):
      on logged iterations (``logger.print_freq``) the Ranker also scores the GT patches, logged as ``gt_r``
      with ``out_beats_gt``, the share of outputs scored better than their GT by more than ``margin`` (0.5);
      one warning per validation period when that share averaged ``share_limit`` (0.5) or more. Keys:
      ``enabled``, ``margin``, ``share_limit``, ``every``, ``period``; see
      :mod:`ranksrgan_plugin.rank_content.monitor`.

    The Rankers, their losses and monitors are one :class:`~ranksrgan_plugin.rank_content.RankContent`
    (``rank_content``), the same object as MMagic's RankSRGAN holds; :attr:`rankers` and :attr:`net_r` read it.

    Every block above refuses a key it does not know, with the closest valid name; so does ``train`` (its keys:
    :attr:`train_options`, BasicSR's and :mod:`.training_precision`'s). A Ranker file that records its training
    (:mod:`ranksrgan_plugin.rank_content.ranker_record`) is checked against its rank-content loss's
    ``higher_is_better``; the options' ``scale`` against ``network_g``'s measured factor
    (:func:`~ranksrgan_plugin.compat.basicsr.check_generator_scale`).
    """

    frozen_networks = ('network_r',)
    optimizer_names = ('g', 'd')  # the optimisers' names in backward / step_optimizers (and their fp16 scalers)
    # the train.* keys read beside BasicSR's own (training_precision.BASICSR_TRAIN_OPTIONS) and the precision family
    train_options = ('ema_decay', 'pixel_opt', 'perceptual_opt', 'gan_opt', 'net_d_iters', 'net_d_init_iters',
                     'optim_g', 'optim_d', 'rank_opt', 'ranker_batchnorm', 'relativistic', 'ranker_monitor',
                     'batchnorm_group')

    def __init__(self, opt: Dict[str, Any]) -> None:
        check_validation_metrics(opt)
        check_train_options(opt, self.train_options, type(self).__name__)
        super().__init__(opt)
        check_generator_scale(self)

    def init_training_settings(self) -> None:
        """The training state, in one place: every option block checked before any network is built, then the
        frozen Rankers (:class:`~ranksrgan_plugin.rank_content.RankContent`), SRGAN's networks, losses and optimisers,
        and the step's networks put in its memory format / compiled (:meth:`prepare_networks`)."""
        train_opt = self.opt['train']
        specs = ranker_specs(basicsr_single_ranker(self.opt), self.opt.get('rankers'), BASICSR_REGISTRIES)
        monitoring = self._monitor_settings()
        check_perceptual_weights(train_opt.get('perceptual_opt'))
        self.batchnorm_group = check_group_size(train_opt.get('batchnorm_group'), 'train.batchnorm_group')
        self.relativistic = bool(train_opt.get('relativistic', False))
        self.rank_content = RankContent.build(specs, monitoring, self._toolbox())
        super().init_training_settings()
        get_root_logger().info(group_batchnorms({'network_d': self.get_bare_model(self.net_d),
                                                 **self.rank_content.labelled_networks},
                                                self.batchnorm_group, 'train.batchnorm_group'))
        self.prepare_networks([self.net_g, self.net_d, *self.rank_content.networks.values()]
                              + ([self.cri_perceptual] if self.cri_perceptual else []))

    def trained_networks(self) -> Sequence[nn.Module]:
        return self.net_g, self.net_d

    @property
    def rankers(self) -> Dict[str, nn.Module]:
        """``{name: frozen Ranker}`` (``''``: the paper's single ``network_r``)."""
        return self.rank_content.networks

    @property
    def net_r(self) -> nn.Module:
        """The paper's single frozen Ranker (``network_r``); with a ``rankers`` list, see :attr:`rankers`."""
        return self.rank_content.single('net_r').net

    def _monitor_settings(self) -> Dict[str, Any]:
        logger = self.opt.get('logger') or {}
        period = (self.opt.get('val') or {}).get('val_freq') or logger.get('save_checkpoint_freq', 5000)
        return monitor_settings(self.opt['train'].get('ranker_monitor'), logger.get('print_freq', 100), int(period),
                                'train.ranker_monitor')

    def _toolbox(self) -> Toolbox:
        """How this model builds and loads its Rankers (on its device) and names its rank-content losses."""
        return Toolbox(BASICSR_REGISTRIES, lambda options: build_network(dict(options)).to(self.device),
                       lambda options: build_loss(dict(options)).to(self.device), read_checkpoint, _load_weights,
                       get_root_logger().info, 'options/train_Ranker_NIQE.yml', 'l_g_rank')

    def optimize_parameters(self, current_iter: int) -> None:
        """SRGAN's iteration (generator step, then discriminator step), both decided together by the non-finite
        guard (:mod:`.training_precision`) after both backward passes: they step, or neither does and the networks
        are as before the iteration. The discriminator's pass sees the generator's output of before its step in
        either order, so the order of the steps changes nothing."""
        loss_dict: Dict[str, torch.Tensor] = OrderedDict()
        self.snapshot_buffers()
        self.net_d.requires_grad_(False)
        self.optimizer_g.zero_grad()
        with self.autocast():
            self.output = self.net_g(self.memory_format(self.lq))
        steps, checked = [], OrderedDict()
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            with self.autocast():
                checked['l_g_total'] = self.generator_losses(loss_dict, current_iter)
            self.backward(checked['l_g_total'], 'g')
            steps.append((self.optimizer_g, 'g'))
        self.net_d.requires_grad_(True)
        checked.update(self.discriminator_backward(loss_dict))
        skipped = self.step_optimizers(steps + [(self.optimizer_d, 'd')], checked)
        self.count_nonfinite(skipped, loss_dict, current_iter)
        for warning in self.rank_content.period_warnings(current_iter):  # the Ranker-exploitation monitor's
            get_root_logger().warning(warning)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.log_guard(self.log_dict)
        if self.ema_decay > 0 and not skipped:
            self.model_ema(decay=self.ema_decay)

    def generator_losses(self, loss_dict: Dict[str, Any], current_iter: Optional[int] = None) -> torch.Tensor:
        """SRGAN's generator losses plus the rank-content loss; fills ``loss_dict``, returns the total.

        ``current_iter``: for the Ranker-exploitation monitor (its readings go into ``loss_dict`` on monitored
        iterations; ``None``: no monitoring).
        """
        l_g_total = 0
        output = self.output.float()  # the losses on fp32 values (bf16 / fp16 forward passes)
        if self.cri_pix:
            loss_dict['l_g_pix'] = self.cri_pix(output, self.gt)
            l_g_total += loss_dict['l_g_pix']
        if self.cri_perceptual:
            l_g_percep, l_g_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (('l_g_percep', l_g_percep), ('l_g_style', l_g_style)):
                if value is not None:
                    loss_dict[name] = value
                    l_g_total += value
        loss_dict['l_g_gan'] = self.generator_gan_loss()
        l_g_total = l_g_total + loss_dict['l_g_gan']
        gt = self.memory_format(self.gt) if self.rank_content.monitoring(current_iter) else None
        loss_dict.update(self.rank_content.losses(self.output, gt, current_iter))
        for key in self.rank_content.loss_keys:  # one Ranker (the paper's), or several (rankers: list)
            l_g_total = l_g_total + loss_dict[key]
        return l_g_total

    def generator_gan_loss(self) -> torch.Tensor:
        """The generator's GAN loss: vanilla, or relativistic average (the original's ``ragan``)."""
        fake_pred = self.net_d(self.output).float()
        if not self.relativistic:
            return self.cri_gan(fake_pred, True, is_disc=False)
        real_pred = self.net_d(self.memory_format(self.gt)).detach().float()
        return (self.cri_gan(real_pred - fake_pred.mean(), False, is_disc=False)
                + self.cri_gan(fake_pred - real_pred.mean(), True, is_disc=False)) / 2

    def discriminator_step(self, loss_dict: Dict[str, Any]) -> bool:
        """SRGAN's discriminator update alone (backward and guarded step); False when it was skipped."""
        return not self.step_optimizers([(self.optimizer_d, 'd')], self.discriminator_backward(loss_dict))

    def discriminator_backward(self, loss_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """SRGAN's discriminator losses on real GT and detached generator output, backpropagated (fills
        ``loss_dict``); returns the losses backpropagated, for the guard."""
        self.optimizer_d.zero_grad()
        if self.relativistic:
            return self.relativistic_discriminator_backward(loss_dict)
        gt = self.memory_format(self.gt)
        with self.autocast():
            real_d_pred = self.net_d(gt).float()
        loss_dict['l_d_real'] = self.cri_gan(real_d_pred, True, is_disc=True)
        loss_dict['out_d_real'] = real_d_pred.detach().mean()
        self.backward(loss_dict['l_d_real'], 'd')
        with self.autocast():
            fake_d_pred = self.net_d(self.output.detach()).float()
        loss_dict['l_d_fake'] = self.cri_gan(fake_d_pred, False, is_disc=True)
        loss_dict['out_d_fake'] = fake_d_pred.detach().mean()
        self.backward(loss_dict['l_d_fake'], 'd')
        return {'l_d_real': loss_dict['l_d_real'], 'l_d_fake': loss_dict['l_d_fake']}

    def relativistic_discriminator_backward(self, loss_dict: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """The original's ``ragan`` discriminator losses: both terms, each through both predictions."""
        with self.autocast():
            real_d_pred = self.net_d(self.memory_format(self.gt)).float()
            fake_d_pred = self.net_d(self.output.detach()).float()
        loss_dict['l_d_real'] = self.cri_gan(real_d_pred - fake_d_pred.mean(), True, is_disc=True)
        loss_dict['l_d_fake'] = self.cri_gan(fake_d_pred - real_d_pred.mean(), False, is_disc=True)
        loss_dict['out_d_real'] = real_d_pred.detach().mean()
        loss_dict['out_d_fake'] = fake_d_pred.detach().mean()
        l_d_total = (loss_dict['l_d_real'] + loss_dict['l_d_fake']) / 2
        self.backward(l_d_total, 'd')
        return {'l_d_total': l_d_total}


BASICSR_REGISTRIES = Registries(ARCH_REGISTRY, LOSS_REGISTRY, 'network')


def basicsr_single_ranker(opt: Mapping[str, Any]) -> Dict[str, Any]:
    """The options of the paper's single Ranker (``network_r``), by the keys of a ``rankers`` item."""
    paths, train_opt = opt.get('path') or {}, opt.get('train') or {}
    return {'network': ('network_r', opt.get('network_r')),
            'path': ('path.pretrain_network_r', paths.get('pretrain_network_r')),
            'param_key': ('path.param_key_r', paths.get('param_key_r')),
            'strict': ('path.strict_load_r', paths.get('strict_load_r')),
            'rank_opt': ('train.rank_opt', train_opt.get('rank_opt')),
            'batchnorm': ('train.ranker_batchnorm', train_opt.get('ranker_batchnorm'))}


def _load_weights(net: nn.Module, spec: RankerSpec, checkpoint: Any) -> None:
    load_ranker(net, spec.path, spec.param_key, spec.strict, spec.option('path'), checkpoint)
