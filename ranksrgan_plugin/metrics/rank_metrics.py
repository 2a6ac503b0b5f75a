"""How well a Ranker's scores order the metric labels of a rank set (paper Table 1-2).

Both are registered BasicSR metrics, used by RankerModel's validation through ``val.metrics``
with ``type: calculate_srocc`` / ``type: calculate_pair_accuracy``. They take the whole split at
once, not one image: ``scores`` and ``labels`` are aligned sequences over every (key, level) item.

Labels that carry no order never score as perfect: pairs with equal labels are left out of the pair
accuracy (:func:`pair_accuracy_counts` says how many were used and how many were tied), and where
nothing is left to measure (labels all equal, no pair with different labels) the value is NaN with
a warning, not 1.0 and not 0.0. RankPairDataset refuses such a split when it is read.
"""
import warnings
from collections import defaultdict
from itertools import combinations
from typing import Sequence, Tuple

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from scipy import stats


def _as_1d(name: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{name} contains non-finite values.')
    return array


@METRIC_REGISTRY.register()
def calculate_srocc(scores: Sequence[float], labels: Sequence[float], **kwargs) -> float:
    """Spearman rank-order correlation (SROCC) between Ranker scores and metric labels.

    The paper's measure of a Ranker (0.88 for its VGG-12 NIQE Ranker on the held-out rank set).
    Equal labels (or scores) get their average rank, as ``scipy.stats.spearmanr``. Labels that are
    all equal carry no order: the result is NaN, with a warning. Constant scores over labels that
    do differ give 0.0 (a constant Ranker has no skill).
    """
    scores, labels = _as_1d('scores', scores), _as_1d('labels', labels)
    if scores.shape != labels.shape or scores.size < 2:
        raise ValueError(f'SROCC needs >= 2 aligned scores and labels, got {scores.size} and {labels.size}.')
    if np.ptp(labels) == 0:
        warnings.warn(f'SROCC is undefined: the {labels.size} labels are all equal ({labels[0]:g}), so they carry '
                      'no order; reporting NaN.', stacklevel=2)
        return float('nan')
    if np.ptp(scores) == 0:
        return 0.0
    return float(stats.spearmanr(scores, labels).statistic)


def pair_accuracy_counts(scores: Sequence[float], labels: Sequence[float],
                         keys: Sequence[str]) -> Tuple[int, int, int]:
    """``(correct, ordered, tied)`` over the level pairs within each key (patch location).

    ``ordered`` pairs have different labels; ``correct`` of them have scores ordered as the labels
    (equal scores count as wrong); ``tied`` pairs have equal labels and are not measured.
    """
    scores, labels = _as_1d('scores', scores), _as_1d('labels', labels)
    if not (len(scores) == len(labels) == len(keys)):
        raise ValueError(f'Pair accuracy needs aligned scores, labels and keys, got '
                         f'{len(scores)}, {len(labels)} and {len(keys)}.')
    items_by_key = defaultdict(list)
    for index, key in enumerate(keys):
        items_by_key[key].append(index)
    correct = ordered = tied = 0
    for indices in items_by_key.values():
        for i, j in combinations(indices, 2):
            label_order = np.sign(labels[i] - labels[j])
            if label_order == 0:
                tied += 1
                continue
            ordered += 1
            correct += int(np.sign(scores[i] - scores[j]) == label_order)
    return correct, ordered, tied


@METRIC_REGISTRY.register()
def calculate_pair_accuracy(scores: Sequence[float], labels: Sequence[float], keys: Sequence[str],
                            **kwargs) -> float:
    """Share of level pairs within each key (patch location) that the scores order as the labels.

    The original code's "aligned pair accuracy", over the pairs whose labels differ: pairs with
    equal labels carry no order and are left out (:func:`pair_accuracy_counts` gives both numbers);
    equal scores on a pair with different labels count as wrong. With no pair of different labels
    (one item per key, or every pair tied) it is NaN, with a warning.
    """
    correct, ordered, tied = pair_accuracy_counts(scores, labels, keys)
    if ordered == 0:
        warnings.warn(f'Pair accuracy is undefined: none of the {tied} level pairs within a key has different labels '
                      '(each key needs two differently labelled levels); reporting NaN.', stacklevel=2)
        return float('nan')
    return correct / ordered


def batch_pair_accuracy(score_a: torch.Tensor, score_b: torch.Tensor, label_a: torch.Tensor,
                        label_b: torch.Tensor) -> torch.Tensor:
    """Share of a training batch's pairs whose scores are ordered as their labels, pairs with tied
    labels left out; NaN when every pair is tied (nothing to measure: not 1.0). Logged during Ranker
    training, not a loss."""
    with torch.no_grad():
        label_order = torch.sign(label_a.reshape(-1) - label_b.reshape(-1))
        ordered = label_order != 0
        agree = torch.sign(score_a.reshape(-1) - score_b.reshape(-1)) == label_order
        if not ordered.any():
            return torch.full((), float('nan'), device=score_a.device)
        return agree[ordered].float().mean()
