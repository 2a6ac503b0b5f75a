"""BatchNorm over fixed groups of a batch: the original's per-replica statistics on one process.

The original trained under ``DataParallel`` on two GPUs (``gpu_ids: [0, 1]``): every BatchNorm normalised
each replica's share of the batch on its own (RankSRGAN: 4 of 8 images, in the frozen Ranker and the
discriminator; Ranker training: 8 of each side's 16), and only replica 0's statistics reached the running
averages (``replicate`` hands device 0 the module's own buffers). :func:`use_batchnorm_groups` gives a
network's BatchNorm layers that behaviour at any process count (docs/fidelity.md S4, R6).
"""
import warnings
from typing import Mapping, Optional, Set, Tuple

import torch
from torch import nn
from torch.nn import functional as F


class GhostBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose batch statistics are taken over consecutive groups of ``group_size`` images
    (*ghost BatchNorm*), as each ``DataParallel`` replica of the original took its own.

    Only the first group updates the running statistics (``DataParallel``'s replica 0). Evaluation with the
    running statistics is ``BatchNorm2d``'s. A batch of ``group_size`` or fewer images is one group. Same
    parameters, buffers and ``state_dict`` keys as ``BatchNorm2d``; made by :func:`use_batchnorm_groups`.
    """

    group_size: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uses_batch_statistics = self.training or (self.running_mean is None and self.running_var is None)
        if not uses_batch_statistics:
            return super().forward(x)
        if x.shape[0] % self.group_size:
            warn_uneven_batch(x.shape[0], self.group_size)
        if x.shape[0] <= self.group_size:
            return super().forward(x)
        groups = x.split(self.group_size)
        first = super().forward(groups[0])
        rest = [F.batch_norm(group, None, None, self.weight, self.bias, True, 0.0, self.eps) for group in groups[1:]]
        return torch.cat([first, *rest])


class UnevenBatchNormGroupsWarning(UserWarning):
    """A batch that is not a whole number of BatchNorm groups: its last (or only) group holds fewer images."""


_WARNED: Set[Tuple[int, int]] = set()


def warn_uneven_batch(images: int, group_size: int) -> None:
    """One warning per process and (batch, group) pair: fewer images in a BatchNorm group than the options say."""
    if (images, group_size) in _WARNED:
        return
    _WARNED.add((images, group_size))
    last = images % group_size
    warnings.warn(
        f'batchnorm_group is {group_size} images but a batch of {images} reached a BatchNorm on this process: '
        f'{"its statistics are over " + str(images) if images < group_size else "its last group holds " + str(last)}'
        f' images, not {group_size} as in the original (docs/fidelity.md S4, R6). Give each process a multiple of '
        f'{group_size} images (e.g. 2 GPUs x 4 in RankSRGAN), or set batchnorm_group to what you run.',
        UnevenBatchNormGroupsWarning, stacklevel=3)


def check_group_size(group_size: Optional[int], option: str) -> Optional[int]:
    """``group_size`` when it is a valid ``batchnorm_group`` (None or a whole number >= 1); refused otherwise."""
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                   or group_size < 1):
        raise ValueError(f'{option} must be a whole number of images >= 1 (the images per BatchNorm, the '
                         f"original's per-GPU batch) or null (each process's batch), got {group_size!r}.")
    return group_size


def use_batchnorm_groups(net: nn.Module, group_size: Optional[int], option: str) -> nn.Module:
    """Give every ``BatchNorm2d`` of ``net`` (in place) batch statistics over groups of ``group_size`` images.

    ``group_size`` None: each process's whole batch (PyTorch's BatchNorm; an earlier grouping is undone).
    The layers keep their parameters and buffers (an optimiser built before still holds them). A BatchNorm
    of another kind (1d, 3d, SyncBatchNorm) is refused: its grouping would be silently absent. ``option``
    names the setting in messages.
    """
    check_group_size(group_size, option)
    for name, module in net.named_modules():
        if type(module) in (nn.BatchNorm2d, GhostBatchNorm2d):
            module.__class__ = nn.BatchNorm2d if group_size is None else GhostBatchNorm2d
            if group_size is not None:
                module.group_size = group_size
        elif group_size is not None and isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f'{option}: {type(net).__name__}.{name} is a {type(module).__name__}; batch statistics '
                             'per group are implemented for BatchNorm2d only.')
    return net


def batchnorm_group_size(net: nn.Module) -> Optional[int]:
    """The group size of ``net``'s BatchNorm layers (None: whole batches or no BatchNorm)."""
    sizes = {module.group_size for module in net.modules() if isinstance(module, GhostBatchNorm2d)}
    if len(sizes) > 1:
        raise ValueError(f'{type(net).__name__} mixes BatchNorm group sizes {sorted(sizes)}.')
    return next(iter(sizes), None)


def group_batchnorms(nets: Mapping[str, nn.Module], group_size: Optional[int], option: str) -> str:
    """:func:`use_batchnorm_groups` on each of ``nets``; returns their :func:`batchnorm_groups_line`."""
    for net in nets.values():
        use_batchnorm_groups(net, group_size, option)
    return batchnorm_groups_line(nets, option)


def batchnorm_groups_line(nets: Mapping[str, nn.Module], option: str) -> str:
    """The log line saying over how many images each named network's BatchNorm takes its batch statistics."""
    parts = []
    for name, net in nets.items():
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            size = batchnorm_group_size(net)
            parts.append(f'{name}: ' + ("each process's batch" if size is None else f'groups of {size} images'))
    return f'BatchNorm statistics ({option}): ' + ('; '.join(parts) or 'no network has BatchNorm') + '.'
