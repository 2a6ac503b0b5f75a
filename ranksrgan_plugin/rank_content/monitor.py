"""A watch on RankSRGAN's failure mode: the generator learning to fool the frozen Ranker.

The rank-content loss rewards whatever lowers the Ranker's score, and a Ranker trained on a finite rank
dataset has inputs it scores far better than any real image. When the generator finds them, the Ranker
scores its outputs better than their own ground truth, and the metric the Ranker learnt (NIQE, Ma, PI)
gets *worse* while the loss keeps falling. The monitor makes that visible during training, the same in
both toolboxes (:class:`~.term.RankContent` holds one per Ranker):

- on monitored steps it scores the batch's GT patches with the same frozen Ranker (no gradients, the same
  BatchNorm mode as the loss; with batch statistics, GT and outputs in one batch) and logs ``gt_r`` beside
  ``out_r`` and ``out_beats_gt``: the share of the batch whose output the Ranker scores better than its own
  GT by more than the Ranker's training margin (``_<name>`` appended for each Ranker of a ``rankers`` list);
- at the end of each period (the validation period) it warns once when that share, averaged over the
  period's monitored steps, reached ``share_limit``.

Scores follow the rank losses' convention (the score grows with the label: lower = better for NIQE, PI and
the negated Ma); a loss with ``higher_is_better`` flips it (``sign``).
"""
from typing import Any, Callable, Dict, Mapping, Optional

import torch
from torch import nn

from ..utils.option_keys import refuse_unknown_keys

DEFAULTS = {'enabled': True, 'margin': 0.5, 'share_limit': 0.5, 'every': None, 'period': None}


class RankerExploitationMonitor:
    """Scores GT beside the generator's output with one frozen Ranker and warns when the output "beats" GT.

    Args:
        name: The Ranker's name ('' for the paper's single Ranker); suffixes the log keys.
        margin: The Ranker's training margin (the rank loss's; paper: 0.5).
        share_limit: Warn when the period's mean share of outputs beating their GT reaches this.
        every: Monitor one generator step in ``every``.
        period: Iterations per warning period (the validation period).
        sign: -1 when the Ranker's score grows with quality (``higher_is_better``), else 1.
    """

    def __init__(self, name: str = '', margin: float = 0.5, share_limit: float = 0.5, every: int = 1,
                 period: int = 5000, sign: float = 1.0) -> None:
        if margin < 0 or not 0 < share_limit <= 1 or every < 1 or period < 1:
            raise ValueError(f'ranker monitor: margin >= 0, 0 < share_limit <= 1, every >= 1 and period >= 1; got '
                             f'margin={margin}, share_limit={share_limit}, every={every}, period={period}.')
        self.name, self.margin, self.share_limit = name, margin, share_limit
        self.every, self.period, self.sign = every, period, sign
        self.suffix = f'_{name}' if name else ''
        self._sums: Optional[torch.Tensor] = None  # (share, out mean, gt mean) summed over the period, on device
        self._steps = 0

    def due(self, iteration: int) -> bool:
        """Whether this iteration's generator step is monitored."""
        return iteration % self.every == 0

    @torch.no_grad()
    def measure(self, ranker: Callable[[torch.Tensor], torch.Tensor], gt: torch.Tensor, outputs: torch.Tensor,
                out_scores: torch.Tensor, batch_statistics: bool = False) -> Dict[str, torch.Tensor]:
        """``{gt_r<suffix>, out_beats_gt<suffix>}`` of one batch: GT and outputs as the Ranker takes them, and the
        outputs' scores from the rank-content loss.

        With ``batch_statistics`` (a Ranker whose BatchNorm normalises with each batch's statistics, the
        original's) a batch scored alone is normalised by its own statistics, so GT alone and outputs alone are
        not comparable: both are scored in one batch instead (one forward of twice the batch).
        """
        if batch_statistics:
            scores = ranker(torch.cat([outputs.detach(), gt])).float().reshape(-1)
            out_scores, gt_scores = scores[:outputs.shape[0]], scores[outputs.shape[0]:]
        else:
            gt_scores = ranker(gt).float().reshape(-1)
            out_scores = out_scores.detach().float().reshape(-1)
        beats = (self.sign * (gt_scores - out_scores) > self.margin).float().mean()
        record = torch.stack([beats, out_scores.mean(), gt_scores.mean()])
        self._sums = record if self._sums is None else self._sums + record
        self._steps += 1
        return {f'gt_r{self.suffix}': gt_scores.mean(), f'out_beats_gt{self.suffix}': beats}

    def end_of_period(self, iteration: int) -> Optional[str]:
        """At a period's last iteration: the warning text when the period's mean share reached the limit, else
        None; starts the next period."""
        if iteration % self.period != 0 or not self._steps:
            return None
        steps = self._steps
        share, out_mean, gt_mean = (self._sums / steps).tolist()  # one device sync per period
        self._sums, self._steps = None, 0
        if share < self.share_limit:
            return None
        ranker = f'Ranker {self.name!r}' if self.name else 'The Ranker'
        return (f'Ranker exploitation (iterations {iteration - self.period + 1}-{iteration}, {steps} monitored steps): '
                f'{ranker} scored {share:.0%} of the outputs better than their own GT by more than its margin '
                f'{self.margin} (mean score: outputs {out_mean:.3g}, GT {gt_mean:.3g}; share limit '
                f'{self.share_limit:.0%}). Unless the validation metric improves with it, the generator is likely '
                f'finding images that fool the Ranker rather than images the metric prefers; the metric usually '
                f'worsens from here. Try a lower rank-content weight, a mean reduction of the rank-content loss (the '
                f'original sums over the batch), or a Ranker trained on more data.')


def uses_batch_statistics(net: torch.nn.Module) -> bool:
    """Whether a frozen Ranker's BatchNorm normalises with each batch's statistics (``batchnorm: batch``)."""
    return any(module.training for module in net.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm))


def monitor_settings(options: Optional[Mapping[str, Any]], every: int, period: int, where: str) -> Dict[str, Any]:
    """The monitor's settings from an options mapping (``None``: the defaults), ``every`` and ``period`` filled
    with the toolbox's defaults when unset; an unknown key is refused, naming ``where`` and its closest valid name."""
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f'{where} must be a mapping of {sorted(DEFAULTS)}, got {options!r}.')
    options = dict(options or {})
    refuse_unknown_keys(options, DEFAULTS, where)
    if not isinstance(options.get('enabled', True), bool):  # a quoted 'false' is truthy
        raise ValueError(f"{where}.enabled must be true or false, got {options['enabled']!r}.")
    settings = {**DEFAULTS, **options}
    settings['every'] = int(every if settings['every'] is None else settings['every'])
    settings['period'] = int(period if settings['period'] is None else settings['period'])
    return settings

