"""The rank-content term of RankSRGAN, written once for BasicSR and MMagic.

=========================  ==========================================================================
module                     what it holds
=========================  ==========================================================================
:mod:`.specs`              one parser of the Ranker options: the paper's single Ranker under each
                           toolbox's names, or a ``rankers`` list whose items take the same keys in
                           both toolboxes
:mod:`.term`               :class:`RankContent`: each frozen Ranker with its loss and monitor, the
                           generator's losses and log entries, the period's warnings
:mod:`.monitor`            the Ranker-exploitation monitor (GT scored beside the outputs)
:mod:`.ranker_record`      what a trained Ranker file records, checked against the rank-content loss
=========================  ==========================================================================

Log entries, the same in both toolboxes: ``out_r``, ``gt_r``, ``out_beats_gt`` (``_<name>`` for each Ranker of a
list), beside the loss (BasicSR ``l_g_rank``, MMagic ``loss_rank``: each toolbox's name for a generator loss).
"""
from .monitor import RankerExploitationMonitor, monitor_settings, uses_batch_statistics
from .specs import DEFAULT_RANK_OPT, ITEM_KEYS, RankerSpec, Registries, ranker_specs
from .term import SCORE_KEY, FrozenRanker, RankContent, Toolbox, load_frozen_ranker

__all__ = [
    'DEFAULT_RANK_OPT', 'ITEM_KEYS', 'SCORE_KEY', 'FrozenRanker', 'RankContent', 'RankerExploitationMonitor',
    'RankerSpec', 'Registries', 'Toolbox', 'load_frozen_ranker', 'monitor_settings', 'ranker_specs',
    'uses_batch_statistics',
]
