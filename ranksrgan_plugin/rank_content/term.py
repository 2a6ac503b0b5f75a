"""The rank-content term of a RankSRGAN generator: its frozen Rankers, each with its loss and monitor, one object
that BasicSR's ``RankSRGANModel`` and MMagic's ``RankSRGAN`` / ``RankESRGAN`` hold alike.

Per Ranker (``_<name>`` appended to the entries of a ``rankers`` list item; none for the paper's single Ranker):

- ``<loss key>``: the rank-content loss of the Ranker's scores of the generator's outputs; the key is the toolbox's
  name for a generator loss (BasicSR ``l_g_rank``, beside SRGANModel's ``l_g_*``; MMagic ``loss_rank``: MMagic sums
  every entry whose name holds ``loss`` into the generator's loss);
- ``out_r``: the batch's mean Ranker score;
- ``gt_r`` and ``out_beats_gt`` on monitored iterations: see :mod:`.monitor`.

What differs between the toolboxes (how a network, a loss or a Ranker file is built or read, where messages go,
the loss entries' name) comes in a :class:`Toolbox`.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ..archs.ranker_arch import freeze_ranker
from ..checkpoints import check_ranker_checkpoint
from .monitor import RankerExploitationMonitor, uses_batch_statistics
from .ranker_record import check_ranker_direction, read_ranker_record
from .specs import RankerSpec, Registries

SCORE_KEY = 'out_r'


@dataclass(frozen=True)
class Toolbox:
    """What the rank-content term takes from its toolbox.

    ``read``: a Ranker file's content; ``load``: its weights into a built network (``spec`` names the options);
    ``train_with``: the options file or config that trains a Ranker, named when a checkpoint is missing;
    ``loss_key``: the name of the loss entries.
    """
    registries: Registries
    build_network: Callable[[Mapping[str, Any]], nn.Module]
    build_loss: Callable[[Mapping[str, Any]], nn.Module]
    read: Callable[[str], Any]
    load: Callable[[nn.Module, RankerSpec, Any], Any]
    log: Callable[[str], None]
    train_with: str
    loss_key: str


def load_frozen_ranker(spec: RankerSpec, rank_loss: Optional[nn.Module], toolbox: Toolbox) -> nn.Module:
    """The Ranker of ``spec``, loaded and frozen (see ``freeze_ranker``), after its file's record (if any) is checked
    against ``rank_loss``'s ``higher_is_better`` (:mod:`.ranker_record`)."""
    path = check_ranker_checkpoint(spec.path, spec.option('path'), toolbox.train_with)
    checkpoint = toolbox.read(path)
    direction = check_ranker_direction(read_ranker_record(checkpoint), rank_loss, spec.option('rank_opt'), path,
                                       spec.option('path'))
    net = toolbox.build_network(spec.network)
    toolbox.load(net, spec, checkpoint)
    toolbox.log(f'Frozen Ranker {spec.name or type(net).__name__} loaded from {path} '
                f'(BatchNorm: {spec.batchnorm} statistics); {direction}.')
    return freeze_ranker(net, spec.batchnorm)


class FrozenRanker:
    """One Ranker of the term: the frozen network, its rank-content loss and its monitor (None: monitoring off)."""

    def __init__(self, name: str, net: nn.Module, loss: nn.Module, batchnorm: str = 'batch',
                 monitor: Optional[RankerExploitationMonitor] = None) -> None:
        self.name, self.net, self.loss, self.batchnorm, self.monitor = name, net, loss, batchnorm, monitor
        self.suffix = f'_{name}' if name else ''

    def refreeze(self) -> None:
        """Restore the frozen modes (after an owner's ``train()`` / ``eval()``)."""
        freeze_ranker(self.net, self.batchnorm)


class RankContent:
    """The frozen Rankers of a RankSRGAN generator, by name (``''``: the paper's single Ranker), in option order.

    Not an ``nn.Module``: a model that holds it keeps the Rankers out of its module tree (never saved, trained or
    wrapped by DDP); it moves them with :meth:`apply`.
    """

    def __init__(self, rankers: Sequence[FrozenRanker], loss_key: str) -> None:
        self.rankers: Dict[str, FrozenRanker] = OrderedDict((ranker.name, ranker) for ranker in rankers)
        self.loss_key = loss_key
        self.loss_keys = [f'{loss_key}{ranker.suffix}' for ranker in rankers]

    @classmethod
    def build(cls, specs: Sequence[RankerSpec], monitoring: Mapping[str, Any], toolbox: Toolbox) -> 'RankContent':
        """Each spec's loss, frozen Ranker and monitor (``monitoring``: :func:`.monitor.monitor_settings`)."""
        rankers = []
        for spec in specs:
            loss = toolbox.build_loss(spec.rank_opt)
            monitor = None
            if monitoring['enabled']:
                monitor = RankerExploitationMonitor(spec.name, float(monitoring['margin']),
                                                    float(monitoring['share_limit']), monitoring['every'],
                                                    monitoring['period'], getattr(loss, 'sign', 1.0))
            rankers.append(FrozenRanker(spec.name, load_frozen_ranker(spec, loss, toolbox), loss, spec.batchnorm,
                                        monitor))
        return cls(rankers, toolbox.loss_key)

    @property
    def networks(self) -> Dict[str, nn.Module]:
        """``{name: frozen Ranker}``."""
        return OrderedDict((name, ranker.net) for name, ranker in self.rankers.items())

    @property
    def labelled_networks(self) -> Dict[str, nn.Module]:
        """``{'Ranker <name>': frozen Ranker}`` (``'Ranker'``: the paper's single one), for messages."""
        return OrderedDict((f'Ranker {name}'.strip(), net) for name, net in self.networks.items())

    def single(self, what: str) -> FrozenRanker:
        """The paper's single Ranker; ``what`` (the asked attribute) names it when the Rankers are a list."""
        if '' not in self.rankers:
            raise AttributeError(f'{what}: this model has several Rankers ({", ".join(self.rankers)}): use '
                                 '.rankers[name].')
        return self.rankers['']

    def monitoring(self, iteration: Optional[int]) -> bool:
        """Whether :meth:`losses` of ``iteration`` scores GT (then it needs ``gt``)."""
        return iteration is not None and any(ranker.monitor is not None and ranker.monitor.due(iteration)
                                             for ranker in self.rankers.values())

    def losses(self, outputs: torch.Tensor, gt: Optional[torch.Tensor] = None,
               iteration: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """The term's log entries of one generator step (module docstring); the losses are ``self.loss_keys``.

        ``outputs`` and ``gt`` as the Rankers take them; ``gt`` is read on monitored iterations only
        (:meth:`monitoring`); ``iteration`` None: no monitoring.
        """
        entries: Dict[str, torch.Tensor] = OrderedDict()
        for ranker in self.rankers.values():
            scores = ranker.net(outputs).float()  # the loss on fp32 values (bf16 / fp16 forward passes)
            entries[f'{self.loss_key}{ranker.suffix}'] = ranker.loss(scores)
            entries[f'{SCORE_KEY}{ranker.suffix}'] = scores.detach().mean()
            if iteration is not None and ranker.monitor is not None and ranker.monitor.due(iteration):
                if gt is None:
                    raise ValueError(f'Iteration {iteration} is monitored: RankContent.losses needs the GT.')
                entries.update(ranker.monitor.measure(ranker.net, gt, outputs, scores,
                                                      uses_batch_statistics(ranker.net)))
        return entries

    def period_warnings(self, iteration: int) -> List[str]:
        """The monitors' warnings at the end of a period (none otherwise); each monitor then starts the next."""
        warnings = [ranker.monitor.end_of_period(iteration) for ranker in self.rankers.values()
                    if ranker.monitor is not None]
        return [warning for warning in warnings if warning]

    def refreeze(self) -> None:
        for ranker in self.rankers.values():
            ranker.refreeze()

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """``fn`` on every Ranker's tensors (an owner's ``.to()`` / ``.cuda()`` / ``.half()``)."""
        for ranker in self.rankers.values():
            ranker.net._apply(fn)
