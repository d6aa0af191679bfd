"""Bias (LensKit's user-item bias predictor): hand-computed cases and fallbacks, real data (the shared
contract, tests/models/contract.py, checks its parameters, saved file, unknown ids and batch scoring)."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.core.params import ConfigError
from spark_recs.models.bias import Bias

# mu = 15 / 5 = 3.
TINY = pd.DataFrame(
    {
        "user": ["a", "a", "b", "c", "c"],
        "item": ["x", "y", "x", "y", "z"],
        "rating": [4.0, 2.0, 5.0, 3.0, 1.0],
    }
)


def test_undamped_biases_by_hand():
    model = Bias().fit(TINY)
    # b_x = ((4-3) + (5-3)) / 2 = 1.5, b_y = ((2-3) + (3-3)) / 2 = -0.5, b_z = (1-3) / 1 = -2
    # b_a = ((4-3-1.5) + (2-3+0.5)) / 2 = -0.5, b_b = (5-3-1.5) / 1 = 0.5, b_c = ((3-3+0.5) + (1-3+2)) / 2 = 0.25
    assert float(model.mean) == 3.0
    np.testing.assert_allclose(model.item_offsets.numpy(), [1.5, -0.5, -2.0], atol=1e-12)
    np.testing.assert_allclose(model.user_offsets.numpy(), [-0.5, 0.5, 0.25], atol=1e-12)
    predictions = model.predict_for_user("a", ["z", "x", "y"])
    np.testing.assert_allclose(
        predictions.to_numpy(), [3 - 2 - 0.5, 3 + 1.5 - 0.5, 3 - 0.5 - 0.5], atol=1e-12
    )
    assert list(predictions.index) == ["z", "x", "y"]


def test_damped_biases_by_hand():
    model = Bias(damping=2.0).fit(TINY)
    # b_x = 3 / (2+2) = 0.75, b_y = -1 / (2+2) = -0.25, b_z = -2 / (1+2) = -2/3
    # b_a = ((4-3-0.75) + (2-3+0.25)) / (2+2) = -0.125, b_b = (5-3-0.75) / (1+2) = 1.25/3,
    # b_c = ((3-3+0.25) + (1-3+2/3)) / (2+2) = -13/48
    np.testing.assert_allclose(model.item_offsets.numpy(), [0.75, -0.25, -2 / 3], atol=1e-12)
    np.testing.assert_allclose(model.user_offsets.numpy(), [-0.125, 1.25 / 3, -13 / 48], atol=1e-12)
    assert model.predict_for_user("c", ["z"]).iloc[0] == pytest.approx(3 - 2 / 3 - 13 / 48, abs=1e-12)


def test_damping_pair_is_user_then_item():
    model = Bias(damping=(1.0, 0.0)).fit(TINY)
    # items undamped as in the first case; users damped by 1: b_a = -1/3, b_b = 0.5/2, b_c = 0.5/3
    np.testing.assert_allclose(model.item_offsets.numpy(), [1.5, -0.5, -2.0], atol=1e-12)
    np.testing.assert_allclose(model.user_offsets.numpy(), [-1 / 3, 0.25, 0.5 / 3], atol=1e-12)


def test_items_only_and_users_only():
    items_only = Bias(users=False).fit(TINY)
    np.testing.assert_allclose(items_only.user_offsets.numpy(), 0.0)
    assert items_only.predict_for_user("a", ["x"]).iloc[0] == pytest.approx(4.5)
    users_only = Bias(items=False).fit(TINY)
    # b_a = ((4-3) + (2-3)) / 2 = 0, b_b = 2, b_c = ((3-3) + (1-3)) / 2 = -1
    np.testing.assert_allclose(users_only.user_offsets.numpy(), [0.0, 2.0, -1.0], atol=1e-12)
    assert users_only.predict_for_user("b", ["z"]).iloc[0] == pytest.approx(5.0)


def test_unknown_user_and_item_fall_back_to_the_known_bias():
    model = Bias().fit(TINY)
    stranger = model.predict_for_user("nobody", ["x", "z", "new"])
    np.testing.assert_allclose(stranger.to_numpy(), [3 + 1.5, 3 - 2, 3.0], atol=1e-12)
    new_item = model.predict_for_user("b", ["new"])
    assert new_item.iloc[0] == pytest.approx(3 + 0.5)
    scores = model.score_users(np.array([-1, 1]))
    assert scores.dtype == torch.float32 and scores.shape == (2, 3)
    np.testing.assert_allclose(scores.numpy(), [[4.5, 2.5, 1.0], [5.0, 3.0, 1.5]], atol=1e-6)


def test_recommend_ranks_unrated_items_by_prediction():
    model = Bias().fit(TINY)
    assert model.recommend("b", n=5)["item"].tolist() == ["y", "z"]  # 3 - 0.5 + 0.5 = 3 > 3 - 2 + 0.5
    assert model.recommend("nobody", n=2)["item"].tolist() == ["x", "y"]


def test_params_are_kept_as_given_beside_the_fitted_vocabularies():
    model = Bias(items=True, users=False, damping=(2.0, 1.0)).fit(TINY)
    assert model.get_params() == {"items": True, "users": False, "damping": (2.0, 1.0)}
    # The items/users flags do not clash with the fitted vocabularies.
    model.set_params(users=True)
    assert model.users is True and len(model.item_vocab) == 3


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(damping=-1), r"^Bias parameter damping = -1 is out of range \[0, inf\)$"),
        (dict(damping=float("inf")), r"^Bias parameter damping = inf is out of range \[0, inf\)$"),
        (dict(damping=(1.0, -2.0)), r"^Bias parameter damping\[1\] = -2.0 is out of range \[0, inf\)$"),
        (
            dict(damping=(1.0, 2.0, 3.0)),
            r"^Bias parameter damping must be a number .* or a list of 2, .*3.0\]$",
        ),
        (dict(users="no"), r"^Bias parameter users must be true/false, got 'no'$"),
    ],
)
def test_a_bad_parameter_is_a_one_line_error_naming_it_and_its_range(params, message):
    with pytest.raises(ConfigError, match=message):
        Bias(**params)
    model = Bias(damping=(1.0, 2.0))
    with pytest.raises(ConfigError, match=message):
        model.set_params(items=False, **params)
    assert model.get_params() == {"items": True, "users": True, "damping": (1.0, 2.0)}  # left as it was


def test_fit_checks_attributes_assigned_directly_and_needs_ratings():
    model = Bias()
    model.damping = -1
    with pytest.raises(ConfigError, match="Bias parameter damping = -1"):
        model.fit(TINY)
    with pytest.raises(ValueError, match=r"needs column\(s\) \['rating'\]"):
        Bias().fit(TINY[["user", "item"]])


@pytest.fixture(scope="module")
def ml_small():
    ratings = pd.read_csv(shared_data("ml-latest-small/ratings.csv"), usecols=["userId", "movieId", "rating"])
    return ratings.rename(columns={"userId": "user", "movieId": "item"})


@pytest.mark.parametrize("damping", [0.0, 5.0])
def test_matches_a_pandas_groupby_on_ml_latest_small(ml_small, damping):
    """Offsets (float64) agree with an independent pandas computation to 1e-9; so do predictions."""
    model = Bias(damping=damping).fit(ml_small)
    mu = ml_small.rating.mean()
    residual = ml_small.assign(r=ml_small.rating - mu)
    by_item = residual.groupby("item").r
    b_i = by_item.sum() / (by_item.count() + damping)
    residual = residual.assign(r=residual.r - residual.item.map(b_i))
    by_user = residual.groupby("user").r
    b_u = by_user.sum() / (by_user.count() + damping)
    assert float(model.mean) == pytest.approx(mu, abs=1e-12)
    np.testing.assert_allclose(
        model.item_offsets.numpy(), b_i.reindex(model.item_vocab.ids).to_numpy(), atol=1e-9
    )
    np.testing.assert_allclose(
        model.user_offsets.numpy(), b_u.reindex(model.user_vocab.ids).to_numpy(), atol=1e-9
    )
    sample = ml_small.sample(500, random_state=0)
    expected = mu + sample.item.map(b_i).to_numpy() + sample.user.map(b_u).to_numpy()
    got = model.predict_pairs(
        model.user_vocab.indices(sample.user.to_numpy()), model.item_vocab.indices(sample.item.to_numpy())
    )
    np.testing.assert_allclose(got, expected, atol=1e-9)
