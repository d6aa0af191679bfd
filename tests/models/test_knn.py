"""ItemKNN (LensKit's item-item k-NN): hand-computed cases, a brute-force reference, persistence, errors."""

import math

import numpy as np
import pandas as pd
import pytest

from spark_recs.core.params import ConfigError
from spark_recs.models import knn
from spark_recs.models.knn import ItemKNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Item means: i1 (5, 3, 1) -> 3; i2 (4, 2, 3) -> 3; i3 (1, 5, 2) -> 8/3; i4 (4, 2, 5) -> 11/3.
EXPLICIT = pd.DataFrame(
    [
        ("u1", "i1", 5.0),
        ("u1", "i2", 4.0),
        ("u1", "i3", 1.0),
        ("u2", "i1", 3.0),
        ("u2", "i2", 2.0),
        ("u2", "i4", 4.0),
        ("u3", "i1", 1.0),
        ("u3", "i3", 5.0),
        ("u3", "i4", 2.0),
        ("u4", "i2", 3.0),
        ("u4", "i3", 2.0),
        ("u4", "i4", 5.0),
    ],
    columns=["user", "item", "rating"],
)
# Centred vectors over (u1, u2, u3, u4): i1 (2, 0, -2, .), i2 (1, -1, ., 0), i3 (-5/3, ., 7/3, -2/3),
# i4 (., 1/3, -5/3, 4/3). Cosines: s12 = 2 / (sqrt(8) sqrt(2)) = 0.5, s14 = (10/3) / (sqrt(8) sqrt(42)/3)
# = 5 / sqrt(84); s13, s23, s24, s34 are negative and dropped.
S12, S14 = 0.5, 5 / math.sqrt(84)


def test_explicit_similarities_by_hand():
    model = ItemKNN().fit(EXPLICIT)
    sims = model.similarities().to_dense().numpy()
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 0] = S12
    expected[0, 3] = expected[3, 0] = S14
    np.testing.assert_allclose(sims, expected, atol=1e-6)
    np.testing.assert_allclose(model.item_means.numpy(), [3, 3, 8 / 3, 11 / 3], atol=1e-12)


def test_explicit_weighted_average_by_hand():
    model = ItemKNN().fit(EXPLICIT)
    # u4 rated i2 (3 - 3 = 0) and i4 (5 - 11/3 = 4/3), both neighbours of i1 (mean 3).
    expected = 3 + (S12 * 0 + S14 * 4 / 3) / (S12 + S14)
    assert model.predict_for_user("u4", ["i1"]).iloc[0] == pytest.approx(expected, abs=1e-6)
    # u3 rated i1 (1 - 3 = -2), the only neighbour of i2 (mean 3): -2 + 3.
    assert model.predict_for_user("u3", ["i2"]).iloc[0] == pytest.approx(1.0, abs=1e-6)
    # i3 has no neighbours; i2's only neighbour i1 is not rated by u4; unknown item.
    assert model.predict_for_user("u2", ["i3", "i9"]).isna().all()
    assert np.isnan(model.predict_for_user("u4", ["i2"]).iloc[0])
    # nnbrs=1 keeps the most similar rated neighbour: i4 for u4's score of i1.
    nearest = ItemKNN(nnbrs=1).fit(EXPLICIT)
    assert nearest.predict_for_user("u4", ["i1"]).iloc[0] == pytest.approx(3 + 4 / 3, abs=1e-6)
    # min_nbrs=2: u4/i1 has two neighbours, u3/i2 only one.
    strict = ItemKNN(min_nbrs=2).fit(EXPLICIT)
    assert strict.predict_for_user("u4", ["i1"]).iloc[0] == pytest.approx(expected, abs=1e-6)
    assert np.isnan(strict.predict_for_user("u3", ["i2"]).iloc[0])


def test_explicit_sum_and_uncentred_variants_by_hand():
    summed = ItemKNN(aggregate="sum").fit(EXPLICIT)
    assert summed.predict_for_user("u4", ["i1"]).iloc[0] == pytest.approx(S12 + S14, abs=1e-6)
    raw = ItemKNN(center=False).fit(EXPLICIT)
    # Uncentred vectors: i1 (5, 3, 1, 0), i2 (4, 2, 0, 3), i3 (1, 0, 5, 2), i4 (0, 4, 2, 5), all cosines
    # positive: s12 = 26 / sqrt(35 * 29), s13 = 10 / sqrt(35 * 30), s14 = 14 / sqrt(35 * 45). u4 rated i2 (3),
    # i3 (2) and i4 (5): the weighted average of the raw ratings, no mean added back.
    s12, s13, s14 = 26 / math.sqrt(35 * 29), 10 / math.sqrt(35 * 30), 14 / math.sqrt(35 * 45)
    sims = raw.similarities().to_dense().numpy()
    np.testing.assert_allclose(sims[0], [0.0, s12, s13, s14], atol=1e-6)
    expected = (3 * s12 + 2 * s13 + 5 * s14) / (s12 + s13 + s14)
    assert raw.predict_for_user("u4", ["i1"]).iloc[0] == pytest.approx(expected, abs=1e-6)


# Binary vectors: i1 {u1, u2}, i2 {u1, u2, u4}, i3 {u2, u3}, i4 {u4}. Cosines: s12 = 2/sqrt(6),
# s13 = 1/2, s23 = 1/sqrt(6), s24 = 1/sqrt(3), s14 = s34 = 0 (no common user).
IMPLICIT = pd.DataFrame(
    [
        ("u1", "i1"),
        ("u1", "i2"),
        ("u2", "i1"),
        ("u2", "i2"),
        ("u2", "i3"),
        ("u3", "i3"),
        ("u4", "i2"),
        ("u4", "i4"),
    ],
    columns=["user", "item"],
)


def test_implicit_sum_of_similarities_by_hand():
    # A rating column is ignored in implicit mode.
    model = ItemKNN(feedback="implicit").fit(IMPLICIT.assign(rating=[5.0, 1, 2, 3, 4, 5, 1, 2]))
    assert (model.center, model.aggregate) == (False, "sum")
    scores = model.predict_for_user("u1", ["i3", "i4"])
    np.testing.assert_allclose(scores.to_numpy(), [0.5 + 1 / math.sqrt(6), 1 / math.sqrt(3)], atol=1e-6)
    u3 = model.predict_for_user("u3", ["i1", "i2", "i4"])
    np.testing.assert_allclose(u3.to_numpy()[:2], [0.5, 1 / math.sqrt(6)], atol=1e-6)
    assert np.isnan(u3.iloc[2])
    # nnbrs=1: only the more similar of u1's items for i3 (i1, 0.5 > 1/sqrt(6)).
    nearest = ItemKNN(nnbrs=1, feedback="implicit").fit(IMPLICIT)
    assert nearest.predict_for_user("u1", ["i3"]).iloc[0] == pytest.approx(0.5, abs=1e-6)
    # Recommendations: unrated items by score; items without a score are left out.
    assert model.recommend("u3", n=5)["item"].tolist() == ["i1", "i2"]
    assert model.recommend("stranger", n=5).empty


def reference_scores(ratings, nnbrs, min_nbrs, min_sim, center, aggregate, implicit, save_nbrs=None):
    """Brute force over dense matrices: LensKit's ItemItem definition, one (user, item) at a time."""
    users, items = np.sort(ratings.user.unique()), np.sort(ratings.item.unique())
    R = np.full((len(users), len(items)), np.nan)
    R[np.searchsorted(users, ratings.user), np.searchsorted(items, ratings.item)] = (
        1.0 if implicit else ratings.rating.to_numpy()
    )
    rated = ~np.isnan(R)
    means = np.nanmean(R, axis=0)
    X = np.where(rated, R - (means if center else 0.0), 0.0)
    norms = np.linalg.norm(X, axis=0)
    X = X / np.where(norms > 0, norms, 1.0)
    S = X.T @ X
    np.fill_diagonal(S, 0.0)
    S[S < min_sim] = 0.0
    if save_nbrs is not None:
        for i in range(len(items)):
            order = np.lexsort((np.arange(len(items)), -S[i]))
            S[i, order[save_nbrs:]] = 0.0
    values = np.where(rated, R - (means if center else 0.0), 0.0)
    out = np.full(R.shape, np.nan)
    for u in range(len(users)):
        for i in range(len(items)):
            candidates = [(S[i, j], j) for j in np.flatnonzero(rated[u]) if S[i, j] > 0]
            candidates.sort(key=lambda pair: -pair[0])
            chosen = candidates[:nnbrs] if nnbrs else candidates
            if len(chosen) < min_nbrs:
                continue
            sims = np.array([s for s, _ in chosen])
            if aggregate == "sum":
                out[u, i] = sims.sum()
            else:
                out[u, i] = (sims * values[u, [j for _, j in chosen]]).sum() / sims.sum()
                out[u, i] += means[i] if center else 0.0
    return out


def random_ratings(seed, n_users=40, n_items=30, density=0.35):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    return pd.DataFrame(
        {"user": users + 100, "item": items * 3 + 7, "rating": rng.integers(1, 11, len(users)) / 2.0}
    ).sample(frac=1.0, random_state=seed)


@pytest.mark.parametrize(
    "params",
    [
        dict(nnbrs=5, min_nbrs=2),
        dict(nnbrs=None, min_nbrs=1),
        dict(nnbrs=3, min_nbrs=1, aggregate="sum"),
        dict(nnbrs=4, min_nbrs=1, center=False),
        dict(nnbrs=5, min_nbrs=1, feedback="implicit"),
        dict(nnbrs=6, min_nbrs=3, save_nbrs=8),
    ],
)
def test_matches_a_brute_force_reference(params, monkeypatch):
    # Tiny blocks: several similarity blocks and several merged top-k slices per user.
    monkeypatch.setattr(knn, "_SIM_BLOCK_PRODUCTS", 200)
    monkeypatch.setattr(knn, "_SCORE_BLOCK_ELEMENTS", 64)
    ratings = random_ratings(seed=len(str(params)))
    model = ItemKNN(min_sim=1e-6, **params).fit(ratings)
    expected = reference_scores(
        ratings,
        params["nnbrs"],
        params["min_nbrs"],
        1e-6,
        model.center,
        model.aggregate,
        params.get("feedback") == "implicit",
        params.get("save_nbrs"),
    )
    scores = model.score_users(np.arange(len(model.user_vocab))).numpy()
    assert np.array_equal(np.isnan(scores), np.isnan(expected))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(expected).mean() > 0.3  # the case is not vacuous


def test_implicit_feedback_params_hold_its_defaults():
    model = ItemKNN(nnbrs=3, feedback="implicit", save_nbrs=10)
    assert model.get_params() == {
        "nnbrs": 3,
        "min_nbrs": 1,
        "min_sim": 1e-6,
        "center": False,
        "aggregate": "sum",
        "feedback": "implicit",
        "save_nbrs": 10,
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(aggregate="median"),
            r"aggregate must be one of \['weighted-average', 'sum'\] or null, got 'median'",
        ),
        (dict(feedback="unary"), r"feedback must be one of \['explicit', 'implicit'\], got 'unary'"),
        (dict(min_sim=0.0), r"min_sim = 0.0 is out of range \(0, inf\)"),
        (dict(min_sim=math.inf), r"min_sim = inf is out of range \(0, inf\)"),
        (dict(nnbrs=0), r"nnbrs = 0 is out of range \[1, inf\)"),
        (dict(min_nbrs=0), r"min_nbrs = 0 is out of range \[1, inf\)"),
        (dict(nnbrs=2, min_nbrs=3), r"min_nbrs \(3\) must not exceed nnbrs \(2\)"),
        (dict(save_nbrs=-1), r"save_nbrs = -1 is out of range \[1, inf\)"),
        (dict(center="yes"), "center must be true/false or null, got 'yes'"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, message):
    with pytest.raises(ConfigError, match=f"^ItemKNN parameter {message}"):
        ItemKNN(**kwargs)
    model = ItemKNN(nnbrs=5)
    with pytest.raises(ConfigError, match=message):
        model.set_params(**kwargs)
    assert model.get_params() == ItemKNN(nnbrs=5).get_params()  # left as it was


def test_explicit_needs_ratings_implicit_does_not():
    with pytest.raises(ValueError, match=r"needs column\(s\) \['rating'\]"):
        ItemKNN().fit(IMPLICIT)
    assert ItemKNN(feedback="implicit").fit(IMPLICIT).n_items == 4
