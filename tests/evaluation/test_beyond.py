"""Beyond-accuracy metrics: hand-computed figures, reference definitions computed the long way (pairs of
users, per-list means), a reference implementation from PyPI (recmetrics), invariants, and the same numbers
from pandas, classic Spark and Spark Connect."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from spark_recs.evaluation.accuracy import RecListAnalysis
from spark_recs.evaluation.beyond import beyond_accuracy, item_exposure

# Two lists of two items; four catalogue items with 3, 1, 2 and 1 of the 4 training users.
RECS = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "a", "c"], "rank": [1, 2, 1, 2]})
TRAIN = pd.DataFrame({"user": [1, 2, 3, 1, 2, 3, 4], "item": ["a", "a", "a", "b", "c", "c", "d"]})
VECTORS = pd.DataFrame({"item": ["a", "b", "c"], "vector": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]})


def hand_computed() -> dict[str, float]:
    return {
        "coverage@2": 3 / 4,  # a, b, c of a, b, c, d
        "gini@2": (-3 * 0 - 1 * 1 + 1 * 1 + 3 * 2) / (4 * 4),  # exposures 0, 1, 1, 2 sorted
        "novelty@2": (2 * -math.log2(3 / 4) - math.log2(1 / 4) - math.log2(2 / 4)) / 4,
        "popularity@2": (3 + 1 + 3 + 2) / 4,
        "personalisation@2": 1 - 1 / 2,  # the two lists share one of two items
        "diversity@2": ((1 - 0) + (1 - 1 / math.sqrt(2))) / 2,
    }


def test_the_hand_computed_figures_in_pandas():
    found = beyond_accuracy(RECS, TRAIN, 2, item_vectors=VECTORS)
    assert found == pytest.approx(hand_computed(), abs=1e-12)


def test_the_same_figures_on_spark(any_spark):
    recs, train = any_spark.createDataFrame(RECS), any_spark.createDataFrame(TRAIN)
    assert beyond_accuracy(recs, train, 2, item_vectors=VECTORS) == pytest.approx(hand_computed(), abs=1e-12)


def test_the_cut_off_applies_before_anything_is_counted():
    longer = pd.concat([RECS, pd.DataFrame({"user": [1, 2], "item": ["d", "d"], "rank": [3, 3]})])
    assert beyond_accuracy(longer, TRAIN, 2) == pytest.approx(
        {k: v for k, v in hand_computed().items() if not k.startswith("diversity")}
    )
    at_3 = beyond_accuracy(longer, TRAIN, 3)
    assert at_3["coverage@3"] == 1.0 and at_3["personalisation@3"] == pytest.approx(1 - 2 / 3)


def test_invariants_of_equal_identical_and_disjoint_lists():
    items = [f"i{n}" for n in range(6)]
    train = pd.DataFrame({"user": range(6), "item": items})
    disjoint = pd.DataFrame({"user": np.repeat([0, 1, 2], 2), "item": items, "rank": [1, 2] * 3})
    found = beyond_accuracy(disjoint, train, 2)
    assert found["coverage@2"] == 1.0 and found["gini@2"] == 0.0 and found["personalisation@2"] == 1.0
    same = pd.DataFrame({"user": np.repeat([0, 1, 2], 2), "item": items[:2] * 3, "rank": [1, 2] * 3})
    found = beyond_accuracy(same, train, 2)
    assert found["personalisation@2"] == 0.0 and found["coverage@2"] == pytest.approx(2 / 6)
    # Two of six items take all the exposure, equally: Gini (2j - n - 1) weights of the top two.
    assert found["gini@2"] == pytest.approx(((2 * 5 - 7) + (2 * 6 - 7)) * 3 / (6 * 6))  # sum c_i = 6


def lists_of(ratings: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each user's k best-rated items (ties: the smaller item id) as a ranked list."""
    top = (
        ratings.sort_values(["user", "rating", "item"], ascending=[True, False, True]).groupby("user").head(k)
    )
    return top.assign(rank=top.groupby("user").cumcount() + 1)[["user", "item", "rank"]]


@pytest.fixture(scope="module")
def movielens():
    folder = shared_data("ml-latest-small")
    ratings = pd.read_csv(folder / "ratings.csv").rename(columns={"userId": "user", "movieId": "item"})
    movies = pd.read_csv(folder / "movies.csv").rename(columns={"movieId": "item"})
    genres = movies["genres"].str.get_dummies("|")
    vectors = pd.DataFrame({"item": movies["item"], "vector": list(genres.to_numpy(dtype=float))})
    return ratings, vectors


def test_the_long_way_on_real_lists(movielens):
    """Personalisation as the mean over every pair of users, novelty and popularity as means over the
    recommended pairs, diversity as the mean over lists of per-pair cosine distances: as the formulas."""
    ratings, vectors = movielens
    k, sample = 10, ratings[ratings["user"] <= 40]
    recs = lists_of(sample, k)
    found = beyond_accuracy(recs, ratings, k, item_vectors=vectors)

    lists = {u: set(rows["item"]) for u, rows in recs.groupby("user")}
    overlaps = [len(lists[u] & lists[v]) / k for u, v in itertools.combinations(sorted(lists), 2)]
    assert found[f"personalisation@{k}"] == pytest.approx(1 - np.mean(overlaps), abs=1e-12)
    users = ratings.groupby("item")["user"].nunique()
    n_users = ratings["user"].nunique()
    assert found[f"novelty@{k}"] == pytest.approx(np.mean(-np.log2(users[recs["item"]] / n_users)), abs=1e-12)
    assert found[f"popularity@{k}"] == pytest.approx(users[recs["item"]].mean(), abs=1e-12)
    by_item = dict(zip(vectors["item"], vectors["vector"]))
    per_list = []
    for _, rows in recs.groupby("user"):
        pairs = itertools.combinations([by_item[i] for i in rows["item"]], 2)
        per_list.append(np.mean([1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in pairs]))
    assert found[f"diversity@{k}"] == pytest.approx(np.mean(per_list), abs=1e-12)
    assert found[f"coverage@{k}"] == pytest.approx(recs["item"].nunique() / ratings["item"].nunique())


def test_pandas_and_both_engines_give_the_same_bits_on_real_lists(any_spark, movielens):
    ratings, vectors = movielens
    recs = lists_of(ratings[ratings["user"] <= 100], 10)
    expected = beyond_accuracy(recs, ratings, 10, item_vectors=vectors)
    spark_recs, spark_train = any_spark.createDataFrame(recs), any_spark.createDataFrame(ratings)
    assert beyond_accuracy(spark_recs.repartition(3), spark_train, 10, item_vectors=vectors) == expected
    assert beyond_accuracy(spark_recs, ratings, 10) == {
        k: v for k, v in expected.items() if "diversity" not in k
    }
    items, n_lists, n_users = item_exposure(spark_recs, spark_train, 10)
    assert (n_lists, n_users) == (100, ratings["user"].nunique()) and items["exposure"].sum() == len(recs)


def test_a_cut_off_below_one_is_refused():
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        beyond_accuracy(RECS, TRAIN, 0)


def test_rec_list_analysis_measures_each_run_on_its_own(any_spark):
    """Two runs' lists in one frame: run 1 the hand-computed lists, run 2 one list of items b and d."""
    other = pd.DataFrame({"user": [5, 5], "item": ["b", "d"], "rank": [1, 2]})
    both = pd.concat([RECS.assign(RunId=1), other.assign(RunId=2)], ignore_index=True)
    analysis = RecListAnalysis()  # group columns: every column but item and rank, i.e. RunId and user
    found = analysis.beyond_accuracy(any_spark.createDataFrame(both), TRAIN, 2, item_vectors=VECTORS)
    assert found["RunId"].tolist() == [1, 2]
    assert found.drop(columns="RunId").iloc[0].to_dict() == pytest.approx(hand_computed(), abs=1e-12)
    assert found.iloc[1]["coverage@2"] == 2 / 4 and math.isnan(found.iloc[1]["personalisation@2"])  # no pair
    pd.testing.assert_frame_equal(analysis.beyond_accuracy(both, TRAIN, 2, item_vectors=VECTORS), found)
    single = RecListAnalysis(["user"]).beyond_accuracy(RECS, TRAIN, 2)
    assert len(single) == 1 and single.iloc[0]["coverage@2"] == 3 / 4


def _recmetrics():
    """recmetrics' metrics module (PyPI ``recmetrics``, installed by ``make test`` without its plotting
    dependencies), loaded by file so its package ``__init__`` (which imports the plots) does not run."""
    found = importlib.util.find_spec("recmetrics")
    if found is None:
        pytest.skip("recmetrics is not installed: make test installs it (pip install --no-deps recmetrics)")
    path = Path(found.submodule_search_locations[0]) / "metrics.py"
    spec = importlib.util.spec_from_file_location("recmetrics_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_figures_equal_recmetrics_on_the_same_lists(movielens):
    """recmetrics 0.1.5's novelty, personalisation, prediction coverage (a percentage to 2 decimals) and
    intra-list similarity on the same 10-item lists of 60 users: for full lists its definitions are ours."""
    reference = _recmetrics()
    ratings, vectors = movielens
    k, recs = 10, lists_of(ratings[ratings["user"] <= 60], 10)
    found = beyond_accuracy(recs, ratings, k, item_vectors=vectors)
    predicted = [rows.sort_values("rank")["item"].tolist() for _, rows in recs.groupby("user")]
    popularity = ratings.groupby("item")["user"].nunique().to_dict()
    n_users = ratings["user"].nunique()

    novelty, _ = reference.novelty(predicted, popularity, n_users, k)
    assert found[f"novelty@{k}"] == pytest.approx(novelty, abs=1e-12)
    assert found[f"personalisation@{k}"] == pytest.approx(reference.personalization(predicted), abs=1e-12)
    catalogue = sorted(popularity)
    assert round(100 * found[f"coverage@{k}"], 2) == reference.prediction_coverage(predicted, catalogue)
    features = pd.DataFrame(list(vectors["vector"]), index=vectors["item"])
    similarity = reference.intra_list_similarity(predicted, features)
    assert found[f"diversity@{k}"] == pytest.approx(1 - similarity, abs=1e-12)
