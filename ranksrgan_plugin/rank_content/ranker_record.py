"""What a trained Ranker file says about its scores: the metric, the direction and the rank set it learnt from.

A Ranker's score grows with its training labels (see :mod:`ranksrgan_plugin.losses.rank_loss`): the metric values,
negated when the training set's ``higher_is_better`` is true. Whether the score grows as images get better or worse
is therefore a fact of its training, not of its weights, and the rank-content loss must be told the same
(``higher_is_better``): the other way round it pushes the generator towards *worse* images. Rankers the plugin
trains carry that fact as a *record*:

- BasicSR (``net_r_<iter>.pth``, and the files ``tools/mmagic_export_ranker.py`` writes): a top-level entry
  ``ranker_record`` beside ``params``;
- MMagic (``RankerModel`` checkpoints): ``message_hub.runtime_info.ranker_record`` (the model writes it into the
  Runner's message hub, which every mmengine checkpoint saves); ``meta.ranker_record`` is read too.

Every loader of Ranker files reads the weights alone, so the record changes nothing for them. RankSRGAN
compares it with its rank-content loss (:func:`check_ranker_direction`). The authors' files and Rankers saved
by plugin versions before the record have none: one log line says the direction is unchecked.
"""
import os.path as osp
from typing import Any, Dict, Mapping, Optional

from ..data.rank_dataset_format import rank_set_record

RECORD_KEY = 'ranker_record'


class RankerDirectionError(ValueError):
    """A rank-content loss's ``higher_is_better`` contradicts the record of the Ranker it scores with."""


def ranker_record(dataroot: Optional[str], higher_is_better: Optional[bool] = None) -> Optional[Dict[str, Any]]:
    """The record of a Ranker trained on the rank-set split ``dataroot``; None when there is no such folder.

    Args:
        dataroot: The training split (``datasets.train.dataroot``, MMagic ``train_dataloader.dataset.data_root``).
        higher_is_better: The training set's ``higher_is_better`` option (labels negated when true); None when
            unset (then the manifest's, as the dataset does).

    Returns ``{metric, higher_is_better, labels_higher_is_better, score_grows_with_quality, manifest, digest}``:
    ``higher_is_better`` is what the training set used; ``labels_higher_is_better`` what its labels are, as the
    split's manifest says (None for a hand-made split without one: unknown, whatever the option claims);
    ``score_grows_with_quality`` follows (None when the labels' direction is unknown).
    """
    if not dataroot or not osp.isdir(str(dataroot)):
        return None
    rank_set = rank_set_record(str(dataroot)) or {}
    labels_direction = rank_set.get('higher_is_better')
    used = bool(labels_direction if higher_is_better is None else higher_is_better)
    grows_with_quality = None if labels_direction is None else used != bool(labels_direction)
    return {'metric': rank_set.get('metric'), 'higher_is_better': used,
            'labels_higher_is_better': labels_direction, 'score_grows_with_quality': grows_with_quality,
            'manifest': rank_set.get('manifest'), 'digest': rank_set.get('digest')}


def read_ranker_record(checkpoint: Any) -> Optional[Dict[str, Any]]:
    """The record held by a loaded Ranker file (BasicSR or mmengine layout), or None."""
    if not isinstance(checkpoint, Mapping):
        return None
    places = [checkpoint, checkpoint.get('meta'), (checkpoint.get('message_hub') or {}).get('runtime_info')]
    for place in places:
        if isinstance(place, Mapping) and isinstance(place.get(RECORD_KEY), Mapping):
            return dict(place[RECORD_KEY])
    return None


def _direction_words(record: Mapping[str, Any]) -> str:
    metric = record.get('metric') or 'its'
    lower = 'higher' if record.get('labels_higher_is_better') else 'lower'
    source = f"rank set {record['manifest']}" if record.get('manifest') else 'its training set'
    return (f"{metric} labels, whose {lower} values are better, with higher_is_better "
            f"{str(record.get('higher_is_better')).lower()} ({source})")


def check_ranker_direction(record: Optional[Mapping[str, Any]], loss: Any, loss_option: str, path: str,
                           path_option: str) -> str:
    """Refuse a rank-content ``loss`` whose ``higher_is_better`` contradicts the Ranker's ``record``.

    Returns the words the Ranker's load line ends with: what the record says, or that the file has none (the
    direction is then unchecked). Raises :class:`RankerDirectionError` naming ``loss_option``, the file, the option
    naming it and the Ranker's metric.
    """
    if record is None or record.get('score_grows_with_quality') is None:
        what = 'records no metric or direction' if record is None else 'records no label direction'
        return (f'{path} {what} (the authors\' files and Rankers saved by older plugin versions do not): '
                f'{loss_option}.higher_is_better is unchecked')
    grows = bool(record['score_grows_with_quality'])
    metric = record.get('metric') or 'the metric'
    given = getattr(loss, 'higher_is_better', None)
    if given is not None and bool(given) != grows:
        trend = 'better' if grows else 'worse'
        raise RankerDirectionError(
            f'{loss_option}.higher_is_better is {str(bool(given)).lower()}, but the Ranker {path} (named by '
            f'{path_option}) was trained on {_direction_words(record)}, so its score grows as images get {trend}: '
            f'set {loss_option}.higher_is_better to {str(grows).lower()}'
            f'{" (or leave it out)" if not grows else ""}. As it is, the rank-content loss would push the generator '
            f'towards worse {metric}.')
    digest = f", sha256 {record['digest'][:12]}" if record.get('digest') else ''
    words = (f'trained on {record.get("metric") or "unnamed"} labels{digest}: its score grows as images get '
             f'{"better" if grows else "worse"}')
    return words if given is None else f'{words}, as {loss_option}.higher_is_better {str(grows).lower()} expects'
