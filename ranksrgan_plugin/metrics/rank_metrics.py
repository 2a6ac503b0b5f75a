"""How well a Ranker's scores order the metric labels of a rank set (paper Table 1-2).

Both are registered BasicSR metrics, used by RankerModel's validation through ``val.metrics``
with ``type: calculate_srocc`` / ``type: calculate_pair_accuracy``. They take the whole split at
once, not one image: ``scores`` and ``labels`` are aligned sequences over every (key, level) item.
"""
from collections import defaultdict
from itertools import combinations
from typing import Sequence

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
    """
    scores, labels = _as_1d('scores', scores), _as_1d('labels', labels)
    if scores.shape != labels.shape or scores.size < 2:
        raise ValueError(f'SROCC needs >= 2 aligned scores and labels, got {scores.size} and {labels.size}.')
    if np.ptp(scores) == 0 or np.ptp(labels) == 0:
        return 0.0  # correlation with a constant is undefined; a constant Ranker has no skill
    return float(stats.spearmanr(scores, labels).statistic)


@METRIC_REGISTRY.register()
def calculate_pair_accuracy(scores: Sequence[float], labels: Sequence[float], keys: Sequence[str],
                            **kwargs) -> float:
    """Share of level pairs within each key (patch location) that the scores order as the labels.

    The original code's "aligned pair accuracy". Pairs with equal labels are left out; equal
    scores on a pair with different labels count as wrong.
    """
    scores, labels = _as_1d('scores', scores), _as_1d('labels', labels)
    if not (len(scores) == len(labels) == len(keys)):
        raise ValueError(f'Pair accuracy needs aligned scores, labels and keys, got '
                         f'{len(scores)}, {len(labels)} and {len(keys)}.')
    items_by_key = defaultdict(list)
    for index, key in enumerate(keys):
        items_by_key[key].append(index)
    correct = total = 0
    for indices in items_by_key.values():
        for i, j in combinations(indices, 2):
            label_order = np.sign(labels[i] - labels[j])
            if label_order == 0:
                continue
            total += 1
            correct += int(np.sign(scores[i] - scores[j]) == label_order)
    if total == 0:
        raise ValueError('Pair accuracy needs at least one key with two differently labelled levels.')
    return correct / total


def batch_pair_accuracy(score_a: torch.Tensor, score_b: torch.Tensor, label_a: torch.Tensor,
                        label_b: torch.Tensor) -> torch.Tensor:
    """Share of a training batch's pairs whose scores are ordered as their labels (pairs with tied
    labels left out; 1 when every pair is tied). Logged during Ranker training, not a loss."""
    with torch.no_grad():
        label_order = torch.sign(label_a.reshape(-1) - label_b.reshape(-1))
        ordered = label_order != 0
        agree = torch.sign(score_a.reshape(-1) - score_b.reshape(-1)) == label_order
        return agree[ordered].float().mean() if ordered.any() else torch.ones((), device=score_a.device)
