"""SROCC and aligned pair accuracy: the measures of a Ranker (paper Tables 1-2)."""
import numpy as np
import pytest
from scipy import stats

from ranksrgan_plugin.metrics.rank_metrics import calculate_pair_accuracy, calculate_srocc


def test_srocc_equals_scipy_spearmanr():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=50)
    scores = labels + rng.normal(scale=1.0, size=50)
    expected = stats.spearmanr(scores, labels)[0]
    assert 0.2 < expected < 0.95  # a non-trivial case
    assert calculate_srocc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert isinstance(calculate_srocc(scores.tolist(), labels.tolist()), float)


def test_srocc_with_ties_equals_scipy():
    scores = [0.1, 0.1, 0.3, 0.2, 0.5, 0.5]
    labels = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0]
    assert calculate_srocc(scores, labels) == pytest.approx(stats.spearmanr(scores, labels)[0], abs=1e-12)


def test_srocc_monotone_transform_is_one():
    labels = np.random.default_rng(1).uniform(2, 9, size=30)
    assert calculate_srocc(np.exp(labels) - 3.0, labels) == pytest.approx(1.0)


def test_srocc_reversed_is_minus_one():
    labels = np.random.default_rng(2).uniform(2, 9, size=30)
    assert calculate_srocc(-labels ** 3, labels) == pytest.approx(-1.0)


def test_srocc_accepts_column_arrays():
    labels = np.arange(6, dtype=float)
    assert calculate_srocc(labels.reshape(-1, 1) * 2, labels) == pytest.approx(1.0)


def test_srocc_constant_scores_is_zero():
    assert calculate_srocc([0.3, 0.3, 0.3], [1.0, 2.0, 3.0]) == 0.0


@pytest.mark.parametrize('scores, labels', [
    ([0.1, 0.2, 0.3], [1.0, 2.0]),
    ([0.1], [1.0]),
    ([], []),
])
def test_srocc_length_errors(scores, labels):
    with pytest.raises(ValueError):
        calculate_srocc(scores, labels)


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_srocc_non_finite_raises(bad):
    with pytest.raises(ValueError, match='scores'):
        calculate_srocc([0.1, bad, 0.3], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match='labels'):
        calculate_srocc([0.1, 0.2, 0.3], [1.0, bad, 3.0])


def hand_case():
    """2 keys x 3 levels, interleaved so that grouping must be by key, not by position.

    k0: labels (3, 2, 1), scores (0.9, 0.5, 0.1): 3 pairs, all ordered as the labels -> 3/3.
    k1: labels (5, 5, 2), scores (0.3, 0.8, 0.3): pair (0, 1) has tied labels -> skipped;
        pair (0, 2): labels 5 > 2 but equal scores -> wrong; pair (1, 2): 0.8 > 0.3 -> right.
    Total: 4 right of 5 orderable pairs = 0.8.
    """
    keys = ['k0', 'k1', 'k0', 'k1', 'k0', 'k1']
    labels = [3.0, 5.0, 2.0, 5.0, 1.0, 2.0]
    scores = [0.9, 0.3, 0.5, 0.8, 0.1, 0.3]
    return scores, labels, keys


def test_pair_accuracy_hand_case():
    scores, labels, keys = hand_case()
    assert calculate_pair_accuracy(scores, labels, keys) == pytest.approx(4 / 5)


def test_pair_accuracy_only_compares_within_a_key():
    # across keys the scores are ordered against the labels; within each key they are right
    keys = ['a', 'a', 'b', 'b']
    labels = [1.0, 2.0, 10.0, 11.0]
    scores = [5.0, 6.0, 0.0, 1.0]
    assert calculate_pair_accuracy(scores, labels, keys) == 1.0
    assert calculate_pair_accuracy([6.0, 5.0, 1.0, 0.0], labels, keys) == 0.0


def test_pair_accuracy_reversed_scores_and_scaling():
    scores, labels, keys = hand_case()
    # negating the scores: k0 0/3, k1 pair (0,2) still tied scores (wrong), pair (1,2) now wrong -> 0/5
    assert calculate_pair_accuracy([-s for s in scores], labels, keys) == 0.0
    # a monotone transform of the scores changes nothing
    assert calculate_pair_accuracy([3 * s + 1 for s in scores], labels, keys) == pytest.approx(0.8)


def test_pair_accuracy_length_mismatch():
    scores, labels, keys = hand_case()
    with pytest.raises(ValueError):
        calculate_pair_accuracy(scores[:-1], labels, keys)
    with pytest.raises(ValueError):
        calculate_pair_accuracy(scores, labels, keys[:-1])
    with pytest.raises(ValueError):
        calculate_pair_accuracy(scores, labels[:-1], keys)


@pytest.mark.parametrize('scores, labels, keys', [
    ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], ['a', 'b', 'c']),  # one item per key: no pair
    ([0.1, 0.2, 0.3, 0.4], [2.0, 2.0, 1.0, 1.0], ['a', 'a', 'b', 'b']),  # every pair tied
    ([], [], []),
])
def test_pair_accuracy_no_orderable_pair(scores, labels, keys):
    with pytest.warns(UserWarning, match='undefined'):
        assert np.isnan(calculate_pair_accuracy(scores, labels, keys))


def test_pair_accuracy_nan_scores():
    scores, labels, keys = hand_case()
    scores[2] = float('nan')
    with pytest.raises(ValueError, match='non-finite'):
        calculate_pair_accuracy(scores, labels, keys)
