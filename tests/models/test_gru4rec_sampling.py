"""Negative sampling from popularity ** alpha and the row-sparse optimisers."""

import math

import numpy as np
import pytest
import torch

from spark_recs.models.gru4rec.optim import RowSparseOptimizer, clip_grad_norm
from spark_recs.models.gru4rec.sampling import NegativeSampler

COUNTS = np.array([1, 4, 9, 16, 100, 0])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_samples_follow_popularity_to_the_alpha(alpha):
    sampler = NegativeSampler(COUNTS, alpha, n_sample=1000, cache_size=50_000, seed=1)
    drawn = torch.cat([sampler.next() for _ in range(200)]).numpy()  # crosses several cache refills
    expected = COUNTS.astype(float) ** alpha * (COUNTS > 0)
    expected /= expected.sum()
    frequencies = np.bincount(drawn, minlength=len(COUNTS)) / len(drawn)
    # 200k draws: the standard error of each frequency is below 0.0012.
    np.testing.assert_allclose(frequencies, expected, atol=0.005)
    np.testing.assert_allclose(sampler.probabilities, expected, atol=1e-12)
    assert frequencies[-1] == 0  # an item never seen is never drawn


def test_one_row_is_shared_per_step_and_the_cache_is_refilled_when_used_up():
    sampler = NegativeSampler(COUNTS[:5], 0.5, n_sample=7, cache_size=21, seed=0)
    assert sampler.n_rows == 3
    rows = [sampler.next() for _ in range(7)]
    assert all(r.shape == (7,) for r in rows)
    assert sampler.pointer == 1  # refilled twice, first row of the third cache served


def rows(sampler, n):
    return torch.stack([sampler.next() for _ in range(n)])


def test_samples_do_not_depend_on_the_cache_size():
    small = NegativeSampler(COUNTS, 0.5, n_sample=4, cache_size=12, seed=3)
    large = NegativeSampler(COUNTS, 0.5, n_sample=4, cache_size=400, seed=3)
    assert torch.equal(rows(small, 50), rows(large, 50))
    assert not torch.equal(rows(small, 50), rows(NegativeSampler(COUNTS, 0.5, 4, 12, seed=4), 50))


def test_sampler_state_restores_the_exact_stream():
    first = NegativeSampler(COUNTS, 0.5, n_sample=4, cache_size=40, seed=3)
    rows(first, 13)
    state = first.state_dict()
    expected = rows(first, 25)
    for cache_size in (40, 12):
        resumed = NegativeSampler(COUNTS, 0.5, n_sample=4, cache_size=cache_size, seed=99)
        resumed.load_state_dict(state)
        assert torch.equal(rows(resumed, 25), expected)


def adagrad_by_hand(w, acc, mom, g, lr, momentum, eps=1e-6):
    acc = acc + g * g
    mom = momentum * mom - lr * g / math.sqrt(acc + eps)
    return w + mom, acc, mom


def test_adagrad_momentum_updates_only_touched_rows_and_keeps_the_others_momentum():
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    opt = RowSparseOptimizer({"w": w}, "adagrad", lr=0.1, momentum=0.5)
    opt.step_rows("w", w, torch.tensor([0, 2]), torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    opt.step_rows("w", w, torch.tensor([2]), torch.tensor([[1.0, 1.0]]))
    expected = {}
    for row, (x0, grads) in enumerate([(1.0, [1.0]), (3.0, []), (5.0, [0.5, 1.0])]):
        x, acc, mom = x0, 0.0, 0.0
        for g in grads:
            x, acc, mom = adagrad_by_hand(x, acc, mom, g, 0.1, 0.5)
        expected[row] = (x, mom)
    assert w[0, 0].item() == pytest.approx(expected[0][0])
    assert w[1].tolist() == [3.0, 4.0]  # never touched
    assert w[2, 0].item() == pytest.approx(expected[2][0])
    # Row 0 was not in the second batch: its momentum was neither decayed nor applied again.
    assert opt.state["w.mom"][0, 0].item() == pytest.approx(expected[0][1])


def test_dense_and_row_steps_agree_on_the_same_gradient():
    g = torch.tensor([[0.3, -1.0], [2.0, 0.1]])
    for algorithm in ("adagrad", "sgd"):
        a, b = torch.ones(2, 2), torch.ones(2, 2)
        opt_a = RowSparseOptimizer({"p": a}, algorithm, lr=0.05, momentum=0.3)
        opt_b = RowSparseOptimizer({"p": b}, algorithm, lr=0.05, momentum=0.3)
        for _ in range(3):
            opt_a.step_dense("p", a, g)
            opt_b.step_rows("p", b, torch.tensor([0, 1]), g)
        torch.testing.assert_close(a, b)


def test_sgd_with_momentum_is_heavy_ball():
    w = torch.zeros(1, 1)
    opt = RowSparseOptimizer({"w": w}, "sgd", lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.step_rows("w", w, torch.tensor([0]), torch.ones(1, 1))
    assert w.item() == pytest.approx(-0.1 * (1 + (0.9 + 1)))


def test_clip_grad_norm_scales_all_gradients_together():
    grads = [torch.tensor([3.0]), torch.tensor([[4.0, 0.0]])]
    clip_grad_norm(grads, 1.0)
    assert grads[0].item() == pytest.approx(0.6, rel=1e-5) and grads[1][0, 0].item() == pytest.approx(
        0.8, rel=1e-5
    )
    small = [torch.tensor([0.3])]
    clip_grad_norm(small, 1.0)
    assert small[0].item() == pytest.approx(0.3, rel=1e-5)


def test_optimiser_refuses_bad_settings():
    with pytest.raises(ValueError, match="optimization_algorithm"):
        RowSparseOptimizer({}, "adam")
    with pytest.raises(ValueError, match="learning_rate"):
        RowSparseOptimizer({}, "sgd", lr=0)
