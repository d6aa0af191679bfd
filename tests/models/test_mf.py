"""Matrix factorisation: from_factors scoring, and BiasedMF / ImplicitMF (LensKit's ALS) on real ratings.

The ALS checks are independent of the implementation: each half-step's result is compared with
``np.linalg.solve`` on the normal equations written out from the model's definition, using the factors of
a model trained one iteration less with the same seed (the factors that half-step started from).
"""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.core.params import ConfigError
from spark_recs.models.bias import Bias
from spark_recs.models.mf import BiasedMF, ImplicitMF, MatrixFactorization
from spark_recs.models.topn import recommend_frame

FEATURES = 16


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    """One torch thread for the module (its fixtures fit models): on a busy machine extra threads stall."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def ml_small():
    ratings = pd.read_csv(shared_data("ml-latest-small/ratings.csv"), usecols=["userId", "movieId", "rating"])
    return ratings.rename(columns={"userId": "user", "movieId": "item"})


def rows_of(model, ratings, side):
    """Per dense index of ``side``, the other side's dense indices and the ratings (training order)."""
    users = model.user_vocab.indices(ratings.user.to_numpy())
    items = model.item_vocab.indices(ratings.item.to_numpy())
    this, other = (users, items) if side == "user" else (items, users)
    return {k: (other[this == k], ratings.rating.to_numpy()[this == k]) for k in np.unique(this)}


def rmse(model, ratings):
    predicted = model.predict_pairs(
        model.user_vocab.indices(ratings.user.to_numpy()), model.item_vocab.indices(ratings.item.to_numpy())
    )
    return float(np.sqrt(np.mean((ratings.rating.to_numpy() - predicted) ** 2)))


# ---- from_factors ------------------------------------------------------------------------------------


def test_from_factors_scores_are_the_dot_products_plus_biases():
    rng = np.random.default_rng(0)
    user_ids, item_ids = np.array([30, 10, 20]), np.array([7, 3, 5, 1])
    U, V = rng.normal(size=(3, 4)), rng.normal(size=(4, 4))
    bu, bi = rng.normal(size=3), rng.normal(size=4)
    model = MatrixFactorization.from_factors(
        user_ids, item_ids, U, V, user_bias=bu, item_bias=bi, global_bias=3.5
    )
    expected = 3.5 + bu[:, None] + bi[None, :] + U @ V.T  # rows/columns in the given id order
    users, items = model.user_vocab.indices(user_ids), model.item_vocab.indices(item_ids)
    scores = model.score_users(users)
    assert scores.dtype == torch.float32
    np.testing.assert_allclose(scores[:, torch.from_numpy(items)].numpy(), expected, rtol=1e-5, atol=1e-5)
    pairs = model.predict_pairs(np.repeat(users, 4), np.tile(items, 3))
    np.testing.assert_allclose(pairs, expected.ravel(), rtol=1e-5, atol=1e-5)
    # Unknown user: global + item bias; unknown item: global + user bias.
    stranger = model.predict_for_user(99, item_ids)
    np.testing.assert_allclose(stranger.to_numpy(), 3.5 + bi, rtol=1e-6)
    assert model.predict_for_user(10, [123]).iloc[0] == pytest.approx(3.5 + bu[1], rel=1e-6)
    # Nothing counts as seen: the top item of user 30 is its best-scoring one.
    assert model.recommend(30, n=1)["item"].iloc[0] == item_ids[np.argmax(expected[0])]


def test_from_factors_without_biases_has_no_fallback_and_round_trips():
    rng = np.random.default_rng(1)
    U, V = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    model = MatrixFactorization.from_factors(["u", "v"], [1, 2, 3, 4, 5], U, V)
    np.testing.assert_allclose(model.score_users(np.array([0, 1])).numpy(), U @ V.T, rtol=1e-6)
    assert torch.isnan(model.score_users(np.array([-1]))).all()
    assert np.isnan(model.predict_for_user("u", [9]).iloc[0])
    assert model.recommend("nobody", n=3).empty
    restored = model.payload().restore()
    assert type(restored) is MatrixFactorization
    assert torch.equal(
        restored.score_users(np.array([0, 1, -1])).nan_to_num(),
        model.score_users(np.array([0, 1, -1])).nan_to_num(),
    )
    with pytest.raises(ValueError, match="item_factors must be a"):
        MatrixFactorization.from_factors([1], [1, 2], U[:1], V)
    with pytest.raises(ValueError, match="user_ids must be unique"):
        MatrixFactorization.from_factors([1, 1], [1, 2, 3, 4, 5], U, V)


# ---- BiasedMF -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def biased(ml_small):
    """BiasedMF fitted for 1, 2, 3 and 8 iterations with one seed (reg given per side)."""
    return {
        n: BiasedMF(features=FEATURES, iterations=n, reg=(0.05, 0.2), seed=3).fit(ml_small)
        for n in (1, 2, 3, 8)
    }


def test_biased_mf_is_deterministic_per_seed(ml_small, biased):
    again = BiasedMF(features=FEATURES, iterations=2, reg=(0.05, 0.2), seed=3).fit(ml_small)
    assert torch.equal(again.user_factors, biased[2].user_factors)
    assert torch.equal(again.item_factors, biased[2].item_factors)
    other = BiasedMF(features=FEATURES, iterations=2, reg=(0.05, 0.2), seed=4).fit(ml_small)
    assert not torch.equal(other.item_factors, biased[2].item_factors)


def test_biased_mf_training_error_falls_well_below_bias(ml_small, biased):
    errors = [rmse(biased[n], ml_small) for n in (1, 2, 3, 8)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    bias_error = rmse(Bias(damping=5.0).fit(ml_small), ml_small)
    assert errors[-1] < 0.8 * bias_error, (errors, bias_error)


def test_biased_mf_biases_are_lenskits_damped_bias(ml_small, biased):
    reference = Bias(damping=5.0).fit(ml_small)
    model = biased[1]
    assert model.global_bias == pytest.approx(float(reference.mean))
    np.testing.assert_allclose(model.user_bias.numpy(), reference.user_offsets.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.item_bias.numpy(), reference.item_offsets.numpy(), rtol=1e-6, atol=1e-7)
    # Unknown users fall back to the bias model's scores; unknown items to mu + b_u.
    np.testing.assert_allclose(
        model.score_users(np.array([-1]))[0].numpy(),
        reference.score_users(np.array([-1]))[0].numpy(),
        rtol=1e-6,
    )
    assert model.predict_for_user(1, [-5]).iloc[0] == pytest.approx(
        reference.predict_for_user(1, [-5]).iloc[0], rel=1e-6
    )


def test_biased_mf_half_steps_solve_their_normal_equations(ml_small, biased):
    """Users at iteration 3 solve (Q'Q + reg_u n I) p = Q' r from the items of iteration 2, items from those users."""
    before, after = biased[2], biased[3]
    reference = Bias(damping=5.0).fit(ml_small)
    users = reference.user_vocab.indices(ml_small.user.to_numpy())
    items = reference.item_vocab.indices(ml_small.item.to_numpy())
    residual = ml_small.assign(
        rating=ml_small.rating.to_numpy()
        - float(reference.mean)
        - reference.user_offsets.numpy()[users]
        - reference.item_offsets.numpy()[items]
    )
    by_user, by_item = rows_of(after, residual, "user"), rows_of(after, residual, "item")
    Q = before.item_factors.double().numpy()
    light, heavy = (
        min(by_user, key=lambda u: len(by_user[u][0])),
        max(by_user, key=lambda u: len(by_user[u][0])),
    )
    for user in (light, heavy, 7):
        cols, r = by_user[user]
        A = Q[cols].T @ Q[cols] + 0.05 * len(cols) * np.eye(FEATURES)
        expected = np.linalg.solve(A, Q[cols].T @ r)
        np.testing.assert_allclose(after.user_factors[user].double().numpy(), expected, rtol=1e-4, atol=1e-5)
    P = after.user_factors.double().numpy()
    counts = {i: len(v[0]) for i, v in by_item.items()}
    single, many = next(i for i, c in counts.items() if c == 1), max(counts, key=counts.get)
    middling = next(i for i, c in counts.items() if 5 <= c < FEATURES)
    for item in (single, middling, many):
        rows, r = by_item[item]
        A = P[rows].T @ P[rows] + 0.2 * len(rows) * np.eye(FEATURES)
        expected = np.linalg.solve(A, P[rows].T @ r)
        np.testing.assert_allclose(after.item_factors[item].double().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_biased_mf_without_bias_factors_the_raw_ratings():
    ratings = pd.DataFrame(
        {"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2], "rating": [5.0, 3.0, 4.0, 1.0, 2.0]}
    )
    model = BiasedMF(features=2, iterations=3, bias=False, reg=0.01).fit(ratings)
    assert not model.has_bias
    assert torch.isnan(model.score_users(np.array([-1]))).all()
    assert 0.5 < model.predict_for_user(1, [1]).iloc[0] < 5.5


# ---- ImplicitMF ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def implicit(ml_small):
    return {
        n: ImplicitMF(features=FEATURES, iterations=n, reg=(0.1, 0.3), weight=20.0, seed=5).fit(ml_small)
        for n in (2, 3)
    }


def test_implicit_mf_is_deterministic_per_seed(ml_small, implicit):
    again = ImplicitMF(features=FEATURES, iterations=2, reg=(0.1, 0.3), weight=20.0, seed=5).fit(ml_small)
    assert torch.equal(again.user_factors, implicit[2].user_factors)
    assert torch.equal(again.item_factors, implicit[2].item_factors)


def test_implicit_mf_half_steps_solve_their_normal_equations(ml_small, implicit):
    """(Q'Q + Q_R' (C-I) Q_R + reg I) p = Q_R' c with c = 1 + weight for observed items (ratings ignored)."""
    before, after = implicit[2], implicit[3]
    by_user, by_item = rows_of(after, ml_small, "user"), rows_of(after, ml_small, "item")
    Q = before.item_factors.double().numpy()
    for user in (0, max(by_user, key=lambda u: len(by_user[u][0]))):
        cols, _ = by_user[user]
        A = Q.T @ Q + 20.0 * Q[cols].T @ Q[cols] + 0.1 * np.eye(FEATURES)
        expected = np.linalg.solve(A, Q[cols].T @ np.full(len(cols), 21.0))
        np.testing.assert_allclose(after.user_factors[user].double().numpy(), expected, rtol=1e-4, atol=1e-6)
    P = after.user_factors.double().numpy()
    counts = {i: len(v[0]) for i, v in by_item.items()}
    for item in (
        next(i for i, c in counts.items() if c == 1),
        next(i for i, c in counts.items() if c == 9),
        max(counts, key=counts.get),
    ):
        rows, _ = by_item[item]
        A = P.T @ P + 20.0 * P[rows].T @ P[rows] + 0.3 * np.eye(FEATURES)
        expected = np.linalg.solve(A, P[rows].T @ np.full(len(rows), 21.0))
        np.testing.assert_allclose(after.item_factors[item].double().numpy(), expected, rtol=1e-4, atol=1e-6)


def test_implicit_mf_use_ratings_weights_confidence_by_rating():
    ratings = pd.DataFrame(
        {"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3], "rating": [5.0, 1.0, 2.0, 4.0, 3.0, 1.0]}
    )
    before = ImplicitMF(features=3, iterations=1, use_ratings=True, weight=2.0, reg=0.5).fit(ratings)
    after = ImplicitMF(features=3, iterations=2, use_ratings=True, weight=2.0, reg=0.5).fit(ratings)
    Q = before.item_factors.double().numpy()
    cols, r = np.array([0, 1]), np.array([5.0, 1.0])  # user 1
    A = Q.T @ Q + Q[cols].T @ np.diag(2.0 * r) @ Q[cols] + 0.5 * np.eye(3)
    expected = np.linalg.solve(A, Q[cols].T @ (1 + 2.0 * r))
    np.testing.assert_allclose(after.user_factors[0].double().numpy(), expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"needs column\(s\) \['rating'\]"):
        ImplicitMF(use_ratings=True).fit(ratings[["user", "item"]])
    assert ImplicitMF(features=2, iterations=1).fit(ratings[["user", "item"]]).user_factors.shape == (3, 2)


def test_implicit_mf_ranks_held_out_items_far_above_chance(ml_small):
    rng = np.random.default_rng(0)
    test_users = rng.choice(ml_small.user.unique(), 150, replace=False)
    shuffled = ml_small.sample(frac=1.0, random_state=1)
    held_out = shuffled[shuffled.user.isin(test_users)].groupby("user").head(5)
    train = ml_small.drop(held_out.index)
    model = ImplicitMF(features=32, iterations=8, seed=2).fit(train)
    recs = recommend_frame(model, test_users, 20)
    hits = recs.merge(held_out, on=["user", "item"]).groupby("user").size().reindex(test_users, fill_value=0)
    hit_rate = float((hits > 0).mean())
    # A random list of 20 from ~9.7k unseen items hits one of 5 held-out items with probability ~1%.
    assert hit_rate > 0.3, hit_rate
    assert not recs.merge(train, on=["user", "item"]).shape[0]  # training items are excluded


# ---- parameters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BiasedMF(features=-1), "BiasedMF parameter features = -1"),
        (lambda: BiasedMF(iterations=0), "BiasedMF parameter iterations = 0"),
        (lambda: BiasedMF(reg=-0.1), "BiasedMF parameter reg = -0.1"),
        (lambda: BiasedMF(reg=(0.1, 0.2, 0.3)), r"BiasedMF parameter reg must be .*, got \[0.1, 0.2, 0.3\]"),
        (lambda: BiasedMF(damping=-5), "BiasedMF parameter damping = -5"),
        (lambda: BiasedMF(seed=-1), "BiasedMF parameter seed = -1"),
        (lambda: ImplicitMF(weight=-1), "ImplicitMF parameter weight = -1"),
        (lambda: ImplicitMF(weight=float("nan")), "ImplicitMF parameter weight = nan"),
        (lambda: ImplicitMF(features=2.5), "ImplicitMF parameter features must be an integer .*, got 2.5"),
        (lambda: ImplicitMF(use_ratings=1), "ImplicitMF parameter use_ratings must be true/false, got 1"),
    ],
)
def test_bad_parameters_name_the_parameter(make, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        make()


def test_biased_mf_needs_ratings():
    with pytest.raises(ValueError, match=r"needs column\(s\) \['rating'\]"):
        BiasedMF().fit(pd.DataFrame({"user": [1], "item": [2]}))
