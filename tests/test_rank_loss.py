"""RankLoss (margin ranking on Ranker scores) and RankRegressionLoss, on hand-computed cases."""
import pytest
import torch

from ranksrgan_plugin.losses.rank_loss import RankLoss, RankRegressionLoss


def t(*values, grad=False):
    return torch.tensor(values, dtype=torch.float32, requires_grad=grad)


@pytest.mark.parametrize('score_a, score_b, label_a, label_b, expected', [
    (1.0, 0.2, 3.0, 1.0, 0.0),  # max(0, -(1.0 - 0.2) + 0.5) = 0: ordered with more than the margin
    (0.2, 1.0, 3.0, 1.0, 1.3),  # max(0, -(0.2 - 1.0) + 0.5) = 1.3
    (0.6, 0.4, 3.0, 1.0, 0.3),  # inside the margin: max(0, -0.2 + 0.5) = 0.3
    (0.2, 1.0, 1.0, 3.0, 0.0),  # y = -1: max(0, (0.2 - 1.0) + 0.5) = 0
    (0.5, 0.4, 1.0, 2.0, 0.6),  # y = -1: max(0, 0.1 + 0.5) = 0.6
])
def test_single_pair_values(score_a, score_b, label_a, label_b, expected):
    loss = RankLoss(margin=0.5)(t(score_a), t(score_b), t(label_a), t(label_b))
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_default_margin_is_half():
    assert RankLoss().margin == 0.5
    assert float(RankLoss()(t(0.0), t(0.0), t(2.0), t(1.0))) == pytest.approx(0.5)


def test_mixed_batch_mean_and_shapes():
    scores_a, scores_b = t(1.0, 0.2, 0.5), t(0.2, 1.0, 0.4)
    labels_a, labels_b = t(3.0, 3.0, 1.0), t(1.0, 1.0, 2.0)
    expected = (0.0 + 1.3 + 0.6) / 3
    loss = RankLoss()(scores_a, scores_b, labels_a, labels_b)
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    # (N, 1) scores as the Ranker gives them, float64 labels as a DataLoader collates them
    loss_2d = RankLoss()(scores_a[:, None], scores_b[:, None], labels_a.double(), labels_b.double())
    assert float(loss_2d) == pytest.approx(expected, abs=1e-6)


def test_tied_labels_are_excluded_from_sum_and_count():
    scores_a, scores_b = t(1.0, 0.2, 0.5, 0.0), t(0.2, 1.0, 0.4, 5.0)
    labels_a, labels_b = t(3.0, 3.0, 1.0, 2.0), t(1.0, 1.0, 2.0, 2.0)  # last pair tied: no order
    assert float(RankLoss()(scores_a, scores_b, labels_a, labels_b)) == pytest.approx(1.9 / 3, abs=1e-6)
    assert float(RankLoss(reduction='sum')(scores_a, scores_b, labels_a, labels_b)) == pytest.approx(1.9, abs=1e-6)


def test_all_tied_batch_is_zero_and_backward_works():
    scores_a, scores_b = t(0.3, -2.0, grad=True), t(1.0, 4.0, grad=True)
    loss = RankLoss()(scores_a, scores_b, t(1.5, 2.0), t(1.5, 2.0))
    assert loss.item() == 0.0
    loss.backward()
    assert scores_a.grad is not None and torch.equal(scores_a.grad, torch.zeros(2))
    assert scores_b.grad is not None and torch.equal(scores_b.grad, torch.zeros(2))


def test_reduction_sum():
    scores_a, scores_b = t(1.0, 0.2, 0.5), t(0.2, 1.0, 0.4)
    labels_a, labels_b = t(3.0, 3.0, 1.0), t(1.0, 1.0, 2.0)
    assert float(RankLoss(reduction='sum')(scores_a, scores_b, labels_a, labels_b)) == pytest.approx(1.9, abs=1e-6)


def test_loss_weight():
    args = (t(0.2, 0.5), t(1.0, 0.4), t(3.0, 1.0), t(1.0, 2.0))
    assert float(RankLoss(loss_weight=2.5)(*args)) == pytest.approx(2.5 * (1.3 + 0.6) / 2, abs=1e-6)
    assert float(RankLoss(loss_weight=2.5, reduction='sum')(*args)) == pytest.approx(2.5 * 1.9, abs=1e-6)


def test_custom_margin():
    assert float(RankLoss(margin=2.0)(t(1.0), t(0.2), t(3.0), t(1.0))) == pytest.approx(1.2, abs=1e-6)
    assert float(RankLoss(margin=0.0)(t(0.2), t(1.0), t(3.0), t(1.0))) == pytest.approx(0.8, abs=1e-6)


def test_gradient_raises_score_of_higher_labelled_item():
    score_hi, score_lo = t(0.2, grad=True), t(1.0, grad=True)  # ordered wrong: hinge active
    RankLoss()(score_hi, score_lo, t(3.0), t(1.0)).backward()
    assert float(score_hi.grad) == pytest.approx(-1.0)  # descent (s -= lr * grad) raises its score
    assert float(score_lo.grad) == pytest.approx(1.0)
    # the same with the higher label in the b position
    score_lo, score_hi = t(1.0, grad=True), t(0.2, grad=True)
    RankLoss()(score_lo, score_hi, t(1.0), t(3.0)).backward()
    assert float(score_hi.grad) < 0 < float(score_lo.grad)


def test_gradient_zero_when_hinge_inactive():
    score_hi, score_lo = t(2.0, grad=True), t(0.0, grad=True)
    RankLoss()(score_hi, score_lo, t(3.0), t(1.0)).backward()
    assert float(score_hi.grad) == 0.0 and float(score_lo.grad) == 0.0


def test_default_clamps_scores_to_5_as_the_original():
    score_hi, score_lo = t(-100.0, grad=True), t(100.0, grad=True)
    loss = RankLoss()(score_hi, score_lo, t(3.0), t(1.0))
    assert loss.item() == pytest.approx(10.5)  # Ranker_model.py: clamp(-5, 5), then margin 0.5
    loss.backward()
    assert float(score_hi.grad) == 0.0 and float(score_lo.grad) == 0.0  # saturated: no gradient


def test_clamp_only_cuts_scores_outside_the_range():
    score_hi, score_lo = t(-6.0, grad=True), t(1.0, grad=True)
    RankLoss(clamp=5)(score_hi, score_lo, t(3.0), t(1.0)).backward()
    assert float(score_hi.grad) == 0.0 and float(score_lo.grad) == pytest.approx(1.0)


def test_no_clamping_of_saturated_scores():
    score_hi, score_lo = t(-100.0, grad=True), t(100.0, grad=True)
    loss = RankLoss(clamp=None)(score_hi, score_lo, t(3.0), t(1.0))
    assert loss.item() == pytest.approx(200.5)
    loss.backward()
    assert float(score_hi.grad) == pytest.approx(-1.0)
    assert float(score_lo.grad) == pytest.approx(1.0)


@pytest.mark.parametrize('clamp', [0, -1.0])
def test_invalid_clamp(clamp):
    with pytest.raises(ValueError, match='clamp'):
        RankLoss(clamp=clamp)


def test_mean_gradient_is_divided_by_ordered_pairs_only():
    scores_a = t(0.2, 0.0, grad=True)
    RankLoss()(scores_a, t(1.0, 0.0), t(3.0, 1.0), t(1.0, 1.0)).backward()  # second pair tied
    assert scores_a.grad.tolist() == pytest.approx([-1.0, 0.0])


@pytest.mark.parametrize('criterion, reduction, expected', [
    ('l1', 'mean', (0.5 + 0.0 + 1.0 + 3.0) / 4),
    ('l1', 'sum', 4.5),
    ('mse', 'mean', (0.25 + 0.0 + 1.0 + 9.0) / 4),
    ('mse', 'sum', 10.25),
])
def test_regression_loss_values(criterion, reduction, expected):
    loss = RankRegressionLoss(criterion=criterion, reduction=reduction)
    value = loss(t(1.0, 2.0)[:, None], t(0.0, 4.0)[:, None], t(1.5, 2.0).double(), t(1.0, 1.0).double())
    assert value.ndim == 0
    assert float(value) == pytest.approx(expected, abs=1e-6)


def test_regression_loss_default_is_l1_mean_and_weighted():
    args = (t(1.0, 2.0), t(0.0, 4.0), t(1.5, 2.0), t(1.0, 1.0))
    assert float(RankRegressionLoss()(*args)) == pytest.approx(1.125)
    assert float(RankRegressionLoss(loss_weight=0.5)(*args)) == pytest.approx(0.5625)


def test_regression_loss_gradient_pulls_score_to_label():
    score = t(1.0, grad=True)
    RankRegressionLoss(criterion='mse')(score, t(0.0), t(3.0), t(0.0)).backward()
    assert float(score.grad) < 0  # 1.0 is below its label 3.0: descent raises it


@pytest.mark.parametrize('criterion', ['l2', 'huber', 'L1', ''])
def test_regression_loss_invalid_criterion(criterion):
    with pytest.raises(ValueError, match='criterion'):
        RankRegressionLoss(criterion=criterion)


@pytest.mark.parametrize('cls', [RankLoss, RankRegressionLoss])
@pytest.mark.parametrize('reduction', ['none', 'max', 'Mean'])
def test_invalid_reduction(cls, reduction):
    with pytest.raises(ValueError, match='reduction'):
        cls(reduction=reduction)
