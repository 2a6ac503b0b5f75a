"""The Ranker of RankSRGAN: a VGG-style network that gives an image one scalar score."""
import os.path as osp
import re
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..utils.checkpoint import read_checkpoint, unwrap_state_dict

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


StateDict = Dict[str, torch.Tensor]


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
    """The :class:`RankerVGG` state_dict held by a checkpoint of any supported layout.

    Accepts a bare state_dict or a BasicSR checkpoint (``{param_key: state_dict}``), strips the
    ``module.`` prefix of DataParallel saves and converts the old ``features.N`` naming.
    """
    state_dict = unwrap_state_dict(checkpoint, wrappers=(param_key,) if param_key else ())
    if any(k.startswith('features.') for k in state_dict):
        state_dict = convert_features_state_dict(state_dict, net)
    return state_dict


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
    from ..utils.checkpoint_fit import CheckpointMismatchError, check_weights_fit, describe_weights

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
    """Load a Ranker checkpoint (plugin, original mmsr or older ``features.N`` layout) into ``net``; a file
    that does not fit is refused by name (:func:`checked_ranker_weights`).

    ``checkpoint``: the file's content when the caller has read it already (e.g. for its record).
    """
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    weights = checked_ranker_weights(net, checkpoint, path, option,
                                     lambda: ranker_state_dict(checkpoint, net, param_key), strict)
    net.load_state_dict(weights, strict=strict)
    return net


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
