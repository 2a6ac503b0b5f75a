"""The receptive field of an SR network, in LR pixels, measured with one small forward pass.

Tiled inference is exact when every tile carries at least the network's receptive-field radius of
real context: an output pixel then sees the same inputs as in an untiled run (at the image edge the
context is clipped and the network's own zero padding applies, as untiled). The radius is read off
the network generically: forward pre-hooks on every layer with a spatial kernel (convolutions,
transposed convolutions, pooling) and on ``nn.Upsample`` record the resolution each one runs at
relative to the input; a layer whose kernel reaches ``r`` pixels at ``factor`` times the input
resolution reaches ``ceil(r / factor)`` LR pixels, and the radius is the sum over all layers run.
The sum is an upper bound: no chain of layers from input to output is longer than all layers
together (in these SR networks the residual trunk is nearly that chain: the bound is about 2 LR
pixels above the measured reach, from rounding up the layers at HR resolution; at x4 it is 37 for
MSRResNet 64x16, 38 for RankSRGANGenerator 64x16, 351 for RRDBNet 64x23), and a parallel branch
(MSRResNet's bilinear skip, one LR pixel) is shorter than the trunk.
Spatial ops called functionally (``F.conv2d``, ``F.interpolate``) are
not seen; the SR networks here (MSRResNet, RRDBNet, RankSRGANGenerator) use modules for every layer
with weights. The bound holds for convolutional networks only: pixels mixed by attention (SwinIR's
windows) are not counted, and a global pooling (RCAN's channel attention) has no finite receptive
field (:class:`UnboundedReceptiveField`): run such networks untiled.
"""
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import torch
from torch import nn

_KERNEL_LAYERS = (nn.modules.conv._ConvNd, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
                  nn.AvgPool3d)
_GLOBAL_LAYERS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                  nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_UPSAMPLE_REACH = {'nearest': 0, 'nearest-exact': 0, 'linear': 1, 'bilinear': 1, 'trilinear': 1, 'bicubic': 2}


class UnboundedReceptiveField(ValueError):
    """The network pools globally: every output pixel depends on the whole image."""


@dataclass(frozen=True)
class ReceptiveField:
    """``radius``: LR pixels of context an output pixel may depend on, on each side (an upper bound).
    ``alignment``: tile offsets must be multiples of it (> 1 when the network downsamples first,
    e.g. BasicSR's RRDBNet x2 / x1 with its pixel-unshuffle), so tiles see the same pixel grid."""

    radius: int
    alignment: int = 1


def _as_tuple(value: Union[int, Sequence[int]], dims: int) -> Tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def kernel_reach(module: nn.Module) -> int:
    """Pixels (at the layer's input resolution) an output pixel of ``module`` reaches on either side."""
    if isinstance(module, nn.Upsample):
        return _UPSAMPLE_REACH.get(module.mode, 2)
    kernel = _as_tuple(module.kernel_size, 1)
    dilation = _as_tuple(getattr(module, 'dilation', 1), len(kernel))
    spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
    padding = getattr(module, 'padding', 0)
    if isinstance(padding, str):  # 'same' centres the kernel (rounding down on the left), 'valid' pads nothing
        pads = [s // 2 if padding == 'same' else 0 for s in spans]
    else:
        pads = list(_as_tuple(padding, len(kernel)))
    reach = max(max(p, s - p) for p, s in zip(pads, spans))
    # a transposed conv's output pixels fall between input pixels: one more for the rounding
    return reach + 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else reach


def _record_inputs(net: nn.Module, probe: torch.Tensor) -> List[Tuple[nn.Module, float]]:
    """(layer, its input resolution / the probe's) of every kernel layer and upsampler, in call order."""
    calls: List[Tuple[nn.Module, float]] = []

    def hook(module: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> None:
        calls.append((module, inputs[0].shape[-1] / probe.shape[-1]))

    handles = [m.register_forward_pre_hook(hook) for m in net.modules()
               if isinstance(m, (*_KERNEL_LAYERS, nn.Upsample, *_GLOBAL_LAYERS))]
    training = net.training
    try:
        with torch.no_grad():
            net.eval()(probe)  # eval: the probe must not touch batch-norm statistics
    finally:
        net.train(training)
        for handle in handles:
            handle.remove()
    return calls


def receptive_field(net: nn.Module, num_in_ch: int = 3, probe_size: int = 16) -> ReceptiveField:
    """The receptive field of ``net`` in LR pixels, from one ``probe_size`` x ``probe_size`` forward pass.

    Args:
        net: the network (its parameters' device and dtype are used for the probe).
        num_in_ch: input channels.
        probe_size: side of the zero probe image; it must be a size the network accepts.
    """
    param = next(net.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device('cpu'), torch.float32)
    calls = _record_inputs(net, torch.zeros(1, num_in_ch, probe_size, probe_size, device=device, dtype=dtype))
    pooled = sorted({type(module).__name__ for module, _ in calls if isinstance(module, _GLOBAL_LAYERS)})
    if pooled:
        raise UnboundedReceptiveField(f'{type(net).__name__} pools globally ({", ".join(pooled)}): each output '
                                      'pixel depends on the whole image, no tiling reproduces it')
    radius = sum(math.ceil(kernel_reach(module) / factor - 1e-9) for module, factor in calls)
    lowest = min([factor for _, factor in calls] + [1.0])
    alignment = max(1, round(1 / lowest))
    return ReceptiveField(radius=math.ceil(radius / alignment) * alignment, alignment=alignment)


def receptive_field_radius(net: nn.Module, num_in_ch: int = 3, probe_size: int = 16) -> int:
    """Upper bound of the LR pixels of context an output pixel of ``net`` depends on (on each side)."""
    return receptive_field(net, num_in_ch, probe_size).radius
