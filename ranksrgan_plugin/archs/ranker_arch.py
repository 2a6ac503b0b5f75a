"""The Ranker of RankSRGAN: a VGG-style network that gives an image one scalar score.

Its checkpoints (BasicSR, the authors' layouts, mmengine's) are read by :mod:`ranksrgan_plugin.checkpoints.ranker`.
"""
import warnings
from typing import List, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

# Number of stride-1 3x3 convs before the stride-2 4x4 conv in stages 1-4 (Table 2 of the
# supplementary). Stage 0 is always conv3s1-64 (no BN) then conv4s2-64 (BN).
_STRIDE1_CONVS_PER_STAGE = {8: 0, 12: 1, 16: 2}


def _ranker_layer_specs(depth: int, num_feat: int, stage_widths: Tuple[int, ...]) -> List[Tuple[str, int, int, int]]:
    """(name, in_channels, out_channels, kernel_size) of every conv, in forward order.

    Names follow the original VGG-12 (``conv<stage>_<index>``, the stride-2 conv last in a stage);
    the BN after a conv shares its suffix (``bn<stage>_<index>``). Stride 2 iff kernel size 4.
    """
    specs = [('conv0_0', 3, num_feat, 3), ('conv0_1', num_feat, num_feat, 4)]
    in_ch = num_feat
    for stage, width in enumerate(stage_widths, start=1):
        n_s1 = _STRIDE1_CONVS_PER_STAGE[depth]
        for index in range(n_s1):
            specs.append((f'conv{stage}_{index}', in_ch, width, 3))
            in_ch = width
        specs.append((f'conv{stage}_{n_s1}', in_ch, width, 4))
        in_ch = width
    return specs


@ARCH_REGISTRY.register()
class RankerVGG(nn.Module):
    """The paper's *Ranker*: VGG-8/12/16 of Table 2 (supplementary), one scalar *ranking score*.

    Conv3s1-64, LReLU; Conv4s2-64, BN, LReLU; then per width c: ``depth``-dependent Conv3s1-c
    (BN, LReLU) and Conv4s2-c (BN, LReLU); global average pooling; FC-100, LReLU; FC-1. LeakyReLU
    slope 0.2. Input RGB in [0, 1] (no normalisation), any size >= 32. The score grows with the
    metric label it was trained on (for NIQE: higher = worse).

    Args:
        depth (int): 8, 12 (the paper's choice) or 16. Default: 12.
        num_in_ch (int): Input channels. Default: 3.
        num_feat (int): Width of the first stage. Default: 64.
        stage_widths (tuple[int]): Widths of stages 1-4. Default: (128, 256, 512, 512).
        num_hidden (int): Width of the hidden linear layer. Default: 100.
    """

    def __init__(self,
                 depth: int = 12,
                 num_in_ch: int = 3,
                 num_feat: int = 64,
                 stage_widths: Tuple[int, ...] = (128, 256, 512, 512),
                 num_hidden: int = 100) -> None:
        super().__init__()
        if depth not in _STRIDE1_CONVS_PER_STAGE:
            raise ValueError(f'RankerVGG depth must be one of {sorted(_STRIDE1_CONVS_PER_STAGE)}, got {depth}.')
        self.depth = depth
        specs = _ranker_layer_specs(depth, num_feat, tuple(stage_widths))
        specs[0] = (specs[0][0], num_in_ch, specs[0][2], specs[0][3])
        self.layer_names = [name for name, *_ in specs]
        for name, in_ch, out_ch, kernel in specs:
            stride = 2 if kernel == 4 else 1
            setattr(self, name, nn.Conv2d(in_ch, out_ch, kernel, stride, 1, bias=True))
            if name != 'conv0_0':
                setattr(self, name.replace('conv', 'bn'), nn.BatchNorm2d(out_ch, affine=True))
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(specs[-1][2], num_hidden), nn.LeakyReLU(0.2, True), nn.Linear(num_hidden, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Ranking scores of a batch (N, 3, H, W) -> (N, 1)."""
        feat = x
        for name in self.layer_names:
            feat = getattr(self, name)(feat)
            if name != 'conv0_0':
                feat = getattr(self, name.replace('conv', 'bn'))(feat)
            feat = self.lrelu(feat)
        feat = self.avg_pool(feat).flatten(1)
        return self.classifier(feat)


PAIR_FORWARDS = ('separate', 'joint')
RANKER_BATCHNORM_MODES = ('batch', 'running')


def score_pairs(ranker: nn.Module, img_a: torch.Tensor, img_b: torch.Tensor,
                pair_forward: str = 'separate') -> Tuple[torch.Tensor, torch.Tensor]:
    """Ranker scores, shape (N,) each, of both sides of a batch of pairs.

    ``'separate'``: one forward pass per side, so BatchNorm normalises each side with its own batch
    statistics (the original's ``Ranker_model.py``); ``'joint'``: one pass over both sides
    concatenated (half the kernel launches; BatchNorm statistics mix both levels).
    """
    if pair_forward == 'separate':
        return ranker(img_a).reshape(-1), ranker(img_b).reshape(-1)
    if pair_forward == 'joint':
        scores = ranker(torch.cat([img_a, img_b])).reshape(2, -1)
        return scores[0], scores[1]
    raise ValueError(f'Unknown pair_forward {pair_forward!r}; choose from {PAIR_FORWARDS}.')


def freeze_ranker(net: nn.Module, batchnorm: str = 'batch') -> nn.Module:
    """A trained Ranker frozen for RankSRGAN: no parameter gradients, BatchNorm as ``batchnorm`` says.

    ``'batch'`` (the original's: ``RankSRGAN_model.py`` never puts the Ranker in eval mode): BatchNorm
    normalises with the statistics of each generator batch; its running statistics stay as loaded
    (``track_running_stats=False``; the original updated them but never used or saved them).
    ``'running'``: eval mode, the running statistics learnt in Ranker training. Idempotent: call it
    again after any ``train()``/``eval()`` of an owner.
    """
    if batchnorm not in RANKER_BATCHNORM_MODES:
        raise ValueError(f'Unknown Ranker batchnorm mode {batchnorm!r}; choose from {RANKER_BATCHNORM_MODES}.')
    net.requires_grad_(False).eval()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = batchnorm == 'running'
            module.train(batchnorm == 'batch')
    if batchnorm == 'batch' and not hasattr(net, '_single_image_warning'):
        net._single_image_warning = net.register_forward_pre_hook(_warn_once_on_single_image)
    return net


class SingleImageBatchNormWarning(UserWarning):
    """The frozen Ranker's batch-statistics BatchNorm was given a batch of one image."""


def _warn_once_on_single_image(net: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> None:
    if inputs[0].shape[0] != 1 or not any(m.training for m in net.modules()
                                          if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        return
    net._single_image_warning.remove()
    warnings.warn(
        'The frozen Ranker normalises with the statistics of each generator batch (ranker_batchnorm: batch, the '
        "original's) and this batch holds 1 image per process: every image is normalised by its own mean and "
        'variance, so the score no longer compares it with the other images of the batch as in the original '
        '(batch 8 on 2 GPUs: 4 per BatchNorm). Use more images per process, or the running statistics '
        "learnt in Ranker training: BasicSR train.ranker_batchnorm: running, MMagic model.ranker_batchnorm='running'.",
        SingleImageBatchNormWarning, stacklevel=2)
