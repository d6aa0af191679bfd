"""GRU4Rec losses on tiny score matrices, against values computed by hand from the formulas."""

import math

import pytest
import torch

from spark_recs.models.gru4rec.losses import logq_correction, sampled_loss

# Row i's target is column i; columns 0-1 are the batch's targets, column 2 a sampled negative.
SCORES = [[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]]


def sig(x):
    return 1 / (1 + math.exp(-x))


def softmax(values):
    e = [math.exp(v) for v in values]
    return [x / sum(e) for x in e]


def loss(name, scores=SCORES, **kw):
    return sampled_loss(torch.tensor(scores), name, **kw).item()


def test_cross_entropy_is_the_softmax_log_loss_of_each_row_target():
    expected = -math.log(softmax([1, 0, 2])[0]) - math.log(softmax([0.5, 1, -1])[1])
    assert loss("cross-entropy") == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_subtracts_logq_from_every_column():
    log_q = torch.tensor([0.3, -0.2, 1.0])
    expected = -math.log(softmax([0.7, 0.2, 1.0])[0]) - math.log(softmax([0.2, 1.2, -2.0])[1])
    assert loss("cross-entropy", log_q=log_q) == pytest.approx(expected, rel=1e-6)


def test_logq_uses_count_for_in_batch_columns_and_count_to_alpha_for_samples():
    log_counts = torch.log(torch.tensor([1.0, 4.0, 9.0, 16.0]))
    outputs = torch.tensor([1, 3, 2, 1])  # two in-batch targets, then two samples
    got = logq_correction(log_counts, outputs, n_targets=2, sample_alpha=0.5, logq=2.0)
    expected = [2 * math.log(4), 2 * math.log(16), 2 * 0.5 * math.log(9), 2 * 0.5 * math.log(4)]
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


def test_bpr_max_weights_negatives_by_their_softmax_and_regularises_their_scores():
    s0, s1 = softmax([0, 2]), softmax([0.5, -1])
    row0 = -math.log(s0[0] * sig(1 - 0) + s0[1] * sig(1 - 2)) + 0.7 * (s0[0] * 0**2 + s0[1] * 2**2)
    row1 = -math.log(s1[0] * sig(1 - 0.5) + s1[1] * sig(1 + 1)) + 0.7 * (s1[0] * 0.5**2 + s1[1] * 1)
    assert loss("bpr-max", bpreg=0.7) == pytest.approx(row0 + row1, rel=1e-6)


def test_bpr_max_applies_elu_to_the_scores_first():
    elu = [[1.0, 0.0, 2.0], [0.5, 1.0, math.exp(-1) - 1]]  # ELU(alpha=1) only changes the negative score
    assert loss("bpr-max", bpreg=0.5, elu_param=1.0) == pytest.approx(loss("bpr-max", scores=elu, bpreg=0.5))
    assert loss("bpr-max", bpreg=0.5, elu_param=1.0) != pytest.approx(loss("bpr-max", bpreg=0.5))


def test_top1_is_the_mean_over_negatives():
    row0 = (sig(0 - 1) + sig(0) + sig(2 - 1) + sig(4)) / 2
    row1 = (sig(0.5 - 1) + sig(0.25) + sig(-1 - 1) + sig(1)) / 2
    assert loss("top1") == pytest.approx(row0 + row1, rel=1e-6)


def test_top1_max_weights_by_the_negatives_softmax():
    s0, s1 = softmax([0, 2]), softmax([0.5, -1])
    row0 = s0[0] * (sig(0 - 1) + sig(0)) + s0[1] * (sig(2 - 1) + sig(4))
    row1 = s1[0] * (sig(0.5 - 1) + sig(0.25)) + s1[1] * (sig(-1 - 1) + sig(1))
    assert loss("top1-max") == pytest.approx(row0 + row1, rel=1e-6)


def test_bpr_is_the_mean_negative_log_sigmoid_of_differences():
    row0 = -(math.log(sig(1 - 0)) + math.log(sig(1 - 2))) / 2
    row1 = -(math.log(sig(1 - 0.5)) + math.log(sig(1 + 1))) / 2
    assert loss("bpr") == pytest.approx(row0 + row1, rel=1e-6)


def test_the_target_column_never_counts_as_its_own_negative():
    # Raising a row's own target score can only lower a ranking loss (it is never a negative).
    better = [[3.0, 0.0, 2.0], [0.5, 1.0, -1.0]]
    for name in ("bpr-max", "top1", "top1-max", "bpr"):
        assert loss(name, scores=better, bpreg=1.0) < loss(name, bpreg=1.0)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        loss("hinge")
