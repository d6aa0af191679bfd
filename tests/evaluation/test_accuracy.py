"""LensKit-exact accuracy metrics: hand-computed cases, and pandas == Spark (classic and Connect) on real data."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from spark_recs.evaluation import accuracy
from spark_recs.evaluation.accuracy import (
    RecListAnalysis,
    global_metric,
    mae,
    prediction_metrics,
    rmse,
    user_metric,
)

LOG2_3, LOG2_5 = math.log2(3), math.log2(5)


def _run(analysis, recs, truth, engine, **kwargs) -> pd.DataFrame:
    """``analysis.compute`` on pandas (``engine=None``) or on a Spark session, as a sorted pandas frame."""
    if engine is None:
        out = analysis.compute(recs, truth, **kwargs)
        assert isinstance(out, pd.DataFrame)
    else:
        out = analysis.compute(engine.createDataFrame(recs), engine.createDataFrame(truth), **kwargs)
        assert not isinstance(out, pd.DataFrame)
        out = out.toPandas()
    keys = [c for c in out.columns if c not in ["nrecs", "ntruth", *analysis.metric_names]]
    return out.sort_values(keys).reset_index(drop=True)


def _engines(any_spark):
    return [None, any_spark]


# ----------------------------------------------------------------------------------------------------
# Top-N: the worked example and hand-computed cases
# ----------------------------------------------------------------------------------------------------

WORKED_RECS = pd.DataFrame({"user": [1, 1, 1], "rank": [1, 2, 3], "item": [5, 2, 7]})
WORKED_TRUTH = pd.DataFrame({"user": [1, 1], "item": [2, 9], "rating": [4.0, 5.0]})


def test_worked_example_single_list_functions():
    one = WORKED_TRUTH.drop(columns="user")
    assert accuracy.precision(WORKED_RECS, one, k=10) == pytest.approx(0.1)
    assert accuracy.recall(WORKED_RECS, one, k=10) == pytest.approx(0.5)
    assert accuracy.ndcg(WORKED_RECS, one, gain="rating") == pytest.approx(4 / 9)
    assert accuracy.ndcg(WORKED_RECS, one) == pytest.approx(0.5)
    assert accuracy.recip_rank(WORKED_RECS, one) == pytest.approx(0.5)
    assert accuracy.hit(WORKED_RECS, {2, 9}, k=1) == 0.0 and accuracy.hit(WORKED_RECS, {2, 9}, k=2) == 1.0


def test_worked_example_pandas_and_spark(any_spark):
    analysis = (
        RecListAnalysis()
        .add_metric("precision", k=10)
        .add_metric("recall", k=10)
        .add_metric("ndcg", gain="rating", name="graded_ndcg")
        .add_metric(accuracy.ndcg)
        .add_metric("recip_rank")
    )
    for engine in _engines(any_spark):
        got = _run(analysis, WORKED_RECS, WORKED_TRUTH, engine)
        assert got.columns.tolist() == [
            "user", "nrecs", "ntruth", "precision@10", "recall@10", "graded_ndcg", "ndcg", "recip_rank",
        ]  # fmt: skip
        row = got.iloc[0]
        assert (row["nrecs"], row["ntruth"]) == (3, 2)
        assert row["precision@10"] == pytest.approx(0.1, abs=1e-12)
        assert row["recall@10"] == pytest.approx(0.5, abs=1e-12)
        assert row["graded_ndcg"] == pytest.approx(4 / 9, abs=1e-12)
        assert row["ndcg"] == pytest.approx(0.5, abs=1e-12)
        assert row["recip_rank"] == pytest.approx(0.5, abs=1e-12)


# User 1: list 10, 11, 12, 13 (rows shuffled, all scores tied: only `rank` orders it); test 11:3, 13:5, 14:4.
# User 2: list 20; test 20:2.  User 3: test 30:4 but no list.  User 4: a list but no test items (left out).
# User 6: list 60; test 60:0 (graded ideal DCG 0 -> graded nDCG 0; binary nDCG 1).
HAND_RECS = pd.DataFrame(
    {
        "user": [1, 4, 1, 2, 1, 6, 1, 4],
        "item": [13, 40, 11, 20, 10, 60, 12, 41],
        "rank": [4, 1, 2, 1, 1, 1, 3, 2],
        "score": [0.5] * 8,
    }
)
HAND_TRUTH = pd.DataFrame(
    {"user": [1, 1, 1, 2, 3, 6], "item": [11, 13, 14, 20, 30, 60], "rating": [3.0, 5.0, 4.0, 2.0, 4.0, 0.0]}
)
HAND_EXPECTED = pd.DataFrame(
    {
        "user": [1, 2, 3, 6],
        "nrecs": [4, 1, 0, 1],
        "ntruth": [3, 1, 1, 1],
        "precision@2": [1 / 2, 1 / 2, 0, 1 / 2],
        "precision@10": [2 / 10, 1 / 10, 0, 1 / 10],  # k larger than the list: still / k
        "precision": [2 / 4, 1, 0, 1],  # no k: / list length
        "recall@2": [1 / 2, 1, 0, 1],  # / min(|test|, k)
        "recall@10": [2 / 3, 1, 0, 1],
        "recall": [2 / 3, 1, 0, 1],
        "hit@1": [0.0, 1, 0, 1],
        "hit@10": [1.0, 1, 0, 1],
        "recip_rank@1": [0.0, 1, 0, 1],
        "recip_rank": [1 / 2, 1, 0, 1],
        # binary: DCG = 1/max(log2 2, 1) + 1/log2 4 = 1.5; ideal over 3 items = 1 + 1 + 1/log2 3
        "ndcg": [1.5 / (2 + 1 / LOG2_3), 1, 0, 1],
        "ndcg@2": [1 / 2, 1, 0, 1],
        # graded: DCG = 3/1 + 5/2; ideal = 5/1 + 4/1 + 3/log2 3; @2: 3 / (5 + 4)
        "graded": [5.5 / (9 + 3 / LOG2_3), 1, 0, 0],
        "graded@2": [3 / 9, 1, 0, 0],
        # discount log2(r + 1): binary DCG = 1/log2 3 + 1/log2 5; ideal = 1 + 1/log2 3 + 1/2
        "ndcg_log2p1": [(1 / LOG2_3 + 1 / LOG2_5) / (1.5 + 1 / LOG2_3), 1, 0, 1],
        "ndcg_log2p1@2": [(1 / LOG2_3) / (1 + 1 / LOG2_3), 1, 0, 1],
        # graded: DCG = 3/log2 3 + 5/log2 5; ideal = 5/1 + 4/log2 3 + 3/2
        "graded_log2p1": [(3 / LOG2_3 + 5 / LOG2_5) / (6.5 + 4 / LOG2_3), 1, 0, 0],
    }
)


def _hand_analysis() -> RecListAnalysis:
    analysis = RecListAnalysis()
    for kind, k in [
        ("precision", 2), ("precision", 10), ("precision", None), ("recall", 2), ("recall", 10),
        ("recall", None), ("hit", 1), ("hit", 10), ("recip_rank", 1), ("recip_rank", None),
        ("ndcg", None), ("ndcg", 2),
    ]:  # fmt: skip
        analysis.add_metric(kind, k=k)
    analysis.add_metric("ndcg", name="graded", gain="rating")
    analysis.add_metric("ndcg", k=2, name="graded@2", gain="rating")
    analysis.add_metric("ndcg_log2p1").add_metric("ndcg_log2p1", k=2)
    analysis.add_metric(accuracy.ndcg_log2p1, name="graded_log2p1", gain="rating")
    return analysis


def test_hand_cases_pandas_spark_and_single_list(any_spark):
    analysis = _hand_analysis()
    for engine in _engines(any_spark):
        got = _run(analysis, HAND_RECS, HAND_TRUTH, engine)
        pd.testing.assert_frame_equal(got, HAND_EXPECTED, check_dtype=False, atol=1e-12, rtol=0)
        assert got["nrecs"].dtype == np.int64 and got["ntruth"].dtype == np.int64
        frames = (
            (HAND_RECS, HAND_TRUTH)
            if engine is None
            else map(engine.createDataFrame, (HAND_RECS, HAND_TRUTH))
        )
        summary = analysis.summary(analysis.compute(*frames))
        assert summary == pytest.approx(HAND_EXPECTED[analysis.metric_names].mean().to_dict(), abs=1e-12)
        # Without include_missing: only test users that have a list (user 3 goes).
        got = _run(analysis, HAND_RECS, HAND_TRUTH, engine, include_missing=False)
        assert got["user"].tolist() == [1, 2, 6]

    # The single-list functions give the same numbers for every user with a list.
    functions = {"precision": accuracy.precision, "recall": accuracy.recall, "hit": accuracy.hit}
    functions |= {
        "recip_rank": accuracy.recip_rank,
        "ndcg": accuracy.ndcg,
        "ndcg_log2p1": accuracy.ndcg_log2p1,
    }
    for user in [1, 2, 6]:
        recs = HAND_RECS[HAND_RECS["user"] == user]
        truth = HAND_TRUTH[HAND_TRUTH["user"] == user].drop(columns="user")
        expected = HAND_EXPECTED.set_index("user").loc[user]
        for m in analysis.metrics:
            extra = {"gain": m.gain} if m.kind.startswith("ndcg") else {}
            assert functions[m.kind](recs, truth, k=m.k, **extra) == pytest.approx(
                expected[m.name], abs=1e-12
            )


def test_group_cols_runs_and_partitions(any_spark):
    # Two runs over the same test users: each run is filled out with every test user.
    recs = pd.DataFrame(
        {"RunId": [1, 1, 2, 2], "user": [1, 1, 2, 1], "rank": [2, 1, 1, 1], "item": [11, 10, 20, 13]}
    )
    analysis = RecListAnalysis().add_metric("recip_rank").add_metric("hit", k=1)
    expected_runs = pd.DataFrame(
        {
            "RunId": [1, 1, 1, 1, 2, 2, 2, 2],
            "user": [1, 2, 3, 6, 1, 2, 3, 6],
            "nrecs": [2, 0, 0, 0, 1, 1, 0, 0],
            "ntruth": [3, 1, 1, 1, 3, 1, 1, 1],
            "recip_rank": [1 / 2, 0, 0, 0, 1, 1, 0, 0],
            "hit@1": [0.0, 0, 0, 0, 1, 1, 0, 0],
        }
    )
    # Partitions: truth keyed by Partition too; a run is filled out only with its partitions' test users.
    part_truth = HAND_TRUTH.assign(Partition=[1, 1, 1, 1, 2, 2])
    part_recs = pd.DataFrame(
        {
            "RunId": [7, 7, 8],
            "Partition": [1, 1, 2],
            "user": [1, 2, 6],
            "rank": [1, 1, 1],
            "item": [13, 99, 60],
        }
    )
    grouped = RecListAnalysis(group_cols=["RunId", "Partition", "user"]).add_metric("recall")
    for engine in _engines(any_spark):
        got = _run(analysis, recs, HAND_TRUTH, engine)
        pd.testing.assert_frame_equal(got, expected_runs, check_dtype=False, atol=1e-12, rtol=0)
        got = _run(grouped, part_recs, part_truth, engine)
        assert got[["RunId", "Partition", "user"]].values.tolist() == [
            [7, 1, 1],
            [7, 1, 2],
            [8, 2, 3],
            [8, 2, 6],
        ]
        assert got["recall"].tolist() == pytest.approx([1 / 3, 0, 0, 1], abs=1e-12)
        assert got["nrecs"].tolist() == [1, 1, 0, 1]


def test_metrics_on_empty_lists(any_spark):
    """An empty recommendation list scores 0 (never NaN, never dropped); no test items gives recall NaN."""
    no_recs = pd.DataFrame({"item": pd.Series([], dtype="int64"), "rank": pd.Series([], dtype="int64")})
    for function, name in accuracy._FUNCTIONS.items():
        assert function(no_recs, WORKED_TRUTH, 10) == 0.0, name
        assert function(no_recs, WORKED_TRUTH) == 0.0, name
    assert math.isnan(accuracy.recall(WORKED_RECS, WORKED_TRUTH.iloc[:0], 5))
    analysis = RecListAnalysis()
    for kind in ("precision", "recall", "ndcg", "ndcg_log2p1", "recip_rank", "hit"):
        analysis.add_metric(kind, k=5)
    empty = pd.DataFrame({"user": [1], "item": [0], "rank": [1]}).iloc[:0]
    for engine in _engines(any_spark):
        if engine is None:
            out = analysis.compute(empty, WORKED_TRUTH)
        else:
            schema = "user long, item long, rank long"
            out = analysis.compute(
                engine.createDataFrame(empty, schema), engine.createDataFrame(WORKED_TRUTH)
            )
            out = out.toPandas()
        assert out["user"].tolist() == [1] and out["nrecs"].tolist() == [0] and out["ntruth"].tolist() == [2]
        assert (out[analysis.metric_names] == 0.0).all(axis=None)
    assert all(
        math.isnan(v) for v in analysis.summary(analysis.compute(empty, WORKED_TRUTH.iloc[:0])).values()
    )
    assert math.isnan(rmse(np.array([]), np.array([]))) and math.isnan(mae(np.array([]), np.array([])))


def test_add_metric_validation():
    analysis = RecListAnalysis().add_metric("ndcg", k=5)
    with pytest.raises(ValueError, match="already exists"):
        analysis.add_metric("ndcg", k=5, gain="rating")
    with pytest.raises(ValueError, match="unknown top-N metric"):
        analysis.add_metric("map")
    with pytest.raises(ValueError, match="ndcg only"):
        analysis.add_metric("recall", gain="rating")
    with pytest.raises(ValueError, match="positive integer"):
        analysis.add_metric("recall", k=0)
    with pytest.raises(ValueError, match="gain column"):
        RecListAnalysis().add_metric("ndcg", gain="stars").compute(WORKED_RECS, WORKED_TRUTH)
    with pytest.raises(ValueError, match="no metrics"):
        RecListAnalysis().compute(WORKED_RECS, WORKED_TRUTH)


# ----------------------------------------------------------------------------------------------------
# Rating prediction: hand case
# ----------------------------------------------------------------------------------------------------

# Errors: user a -1, 0; user b -3.  Global RMSE sqrt(10/3), MAE 4/3; per user RMSE sqrt(1/2) and 3, MAE 1/2 and 3.
PREDS = pd.DataFrame({"user": ["a", "a", "b"], "prediction": [3.0, 4.0, 2.0], "rating": [4.0, 4.0, 5.0]})
PRED_EXPECTED = {
    "rmse": math.sqrt(10 / 3),
    "mae": 4 / 3,
    "user_rmse": (math.sqrt(0.5) + 3) / 2,
    "user_mae": (0.5 + 3) / 2,
    "n_rows": 3,
    "n_users": 2,
}


def test_rmse_mae_global_and_user_averaged():
    assert rmse(PREDS["prediction"].to_numpy(), PREDS["rating"].to_numpy()) == pytest.approx(
        math.sqrt(10 / 3)
    )
    assert mae(PREDS) == pytest.approx(4 / 3)  # the DataFrame form
    assert global_metric(PREDS, mae) == pytest.approx(4 / 3)
    # Series are aligned on their index, like LensKit.
    shuffled = PREDS["rating"].iloc[[2, 0, 1]]
    assert rmse(PREDS["prediction"], shuffled) == pytest.approx(math.sqrt(10 / 3))
    assert user_metric(PREDS) == pytest.approx(PRED_EXPECTED["user_rmse"])
    assert user_metric(PREDS, metric=mae) == pytest.approx(PRED_EXPECTED["user_mae"])
    assert user_metric(PREDS, metric=lambda p, t: float(np.max(np.abs(p - t)))) == pytest.approx(2.0)
    got = prediction_metrics(PREDS)
    assert got == pytest.approx({**PRED_EXPECTED, "n_missing": 0})


def test_missing_predictions_error_or_ignore(any_spark, caplog):
    with_missing = pd.concat(
        [PREDS, pd.DataFrame({"user": ["c", "a"], "prediction": [np.nan, 1.0], "rating": [3.0, np.nan]})],
        ignore_index=True,
    )
    with pytest.raises(ValueError, match="2 of 5 rows"):
        rmse(with_missing)
    with pytest.raises(ValueError, match="2 of 5 rows"):
        user_metric(with_missing, metric=mae)
    assert rmse(with_missing, missing="ignore") == pytest.approx(math.sqrt(10 / 3))
    assert user_metric(with_missing, missing="ignore") == pytest.approx(PRED_EXPECTED["user_rmse"])
    with pytest.raises(ValueError, match="missing must be"):
        mae(with_missing, missing="drop")
    expected = {**PRED_EXPECTED, "n_missing": 2}
    for df in (with_missing, any_spark.createDataFrame(with_missing)):
        with pytest.raises(ValueError, match="2 of 5 rows"):
            prediction_metrics(df)
        with caplog.at_level("INFO", logger="spark_recs.evaluation.accuracy"):
            assert prediction_metrics(df, missing="ignore") == pytest.approx(expected, abs=1e-12)
        assert "ignoring 2 rows" in caplog.text
    assert prediction_metrics(any_spark.createDataFrame(PREDS)) == pytest.approx(
        {**PRED_EXPECTED, "n_missing": 0}, abs=1e-12
    )


def test_spark_results_are_the_same_bits_whatever_the_partitioning(any_spark):
    # Spark's sum adds in arrival order, which the partitioning changes; the metrics add in sorted order.
    rng = np.random.default_rng(1)
    n_users = 1000
    recs = pd.DataFrame(
        {
            "user": np.repeat(np.arange(n_users), 10),
            "rank": np.tile(np.arange(1, 11), n_users),
            "item": rng.integers(0, 30, 10 * n_users),
        }
    ).drop_duplicates(["user", "item"])
    truth = pd.DataFrame(
        {"user": rng.integers(0, n_users, 8_000), "item": rng.integers(0, 30, 8_000)}
    ).drop_duplicates()
    truth["rating"] = rng.uniform(0.5, 5.0, len(truth))
    preds = truth.assign(prediction=truth["rating"] + rng.normal(0.0, 1.0, len(truth)))
    analysis = RecListAnalysis().add_metric("ndcg").add_metric("ndcg", gain="rating", name="graded")
    analysis.add_metric("recip_rank").add_metric("recall", k=5)
    spark_recs, spark_truth = any_spark.createDataFrame(recs), any_spark.createDataFrame(truth)
    spark_preds = any_spark.createDataFrame(preds)

    results = []
    for parts in (1, 7):
        per_list = analysis.compute(spark_recs.repartition(parts), spark_truth.repartition(parts))
        lists = per_list.toPandas().sort_values("user", ignore_index=True)
        results.append(
            (lists, analysis.summary(per_list), prediction_metrics(spark_preds.repartition(parts)))
        )
    (lists, summary, predicted), (other_lists, other_summary, other_predicted) = results
    pd.testing.assert_frame_equal(other_lists, lists, check_exact=True)
    assert other_summary == summary and other_predicted == predicted
    local = analysis.summary(analysis.compute(recs, truth))
    assert summary == pytest.approx(local, abs=1e-12)
    assert predicted == pytest.approx(prediction_metrics(preds), abs=1e-12)


# ----------------------------------------------------------------------------------------------------
# Real data: pandas and Spark agree on ml-latest-small
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml_small():
    """Each user's last 20% (by time, then item) as test; top-20 most popular unseen training items as recs."""
    # Read with pandas (the same rows load_ratings accepts; a Spark read would cost ~10 s of the budget).
    ratings = pd.read_csv(shared_data("ml-latest-small") / "ratings.csv")
    ratings.columns = ["user", "item", "rating", "timestamp"]
    ratings = ratings.sort_values(["user", "timestamp", "item"], kind="stable").reset_index(drop=True)
    position = ratings.groupby("user").cumcount()
    size = ratings.groupby("user")["item"].transform("size")
    is_test = position >= size - (size * 0.2).astype(int)
    train, test = ratings[~is_test], ratings[is_test]

    counts = train.groupby("item").size().reset_index(name="n")
    popular = counts.sort_values(["n", "item"], ascending=[False, True])["item"].tolist()
    rows = []
    for user, seen in train.groupby("user")["item"]:
        if user % 50 == 0:
            continue  # some test users get no list at all
        seen = set(seen)
        picks = [i for i in popular[:200] if i not in seen][:20]
        rows += [(user, rank, item, 100.0 - rank) for rank, item in enumerate(picks, start=1)]
    recs = pd.DataFrame(rows, columns=["user", "rank", "item", "score"])
    recs = recs.sample(frac=1.0, random_state=0)  # row order must not matter
    item_mean = train.groupby("item")["rating"].mean()
    preds = test[["user", "item", "rating"]].assign(prediction=test["item"].map(item_mean).to_numpy())
    return recs, test[["user", "item", "rating"]], preds


def test_pandas_and_spark_agree_on_movielens(ml_small, any_spark):
    recs, test, preds = ml_small
    analysis = RecListAnalysis()
    for k in (5, 10, 20):
        for kind in ("precision", "recall", "hit", "recip_rank", "ndcg"):
            analysis.add_metric(kind, k=k)
        analysis.add_metric("ndcg", k=k, gain="rating", name=f"graded_ndcg@{k}")
    analysis.add_metric("ndcg_log2p1", k=10).add_metric("ndcg_log2p1", gain="rating", name="graded_log2p1")
    for kind in ("precision", "recall", "recip_rank", "ndcg"):
        analysis.add_metric(kind)
    analysis.add_metric("ndcg", gain="rating", name="graded_ndcg")

    local = _run(analysis, recs, test, None)
    remote = _run(analysis, recs, test, any_spark)
    assert len(local) == test["user"].nunique() == 610
    assert (local.loc[local["user"] % 50 == 0, "nrecs"] == 0).all()
    assert local["hit@20"].mean() > 0.1  # the popular lists do find something
    pd.testing.assert_frame_equal(local, remote, check_dtype=False, atol=1e-9, rtol=0)

    # A sample of users against the single-list functions (their own per-list statistics, the core formulas).
    sample = [u for u in local["user"] if u % 37 == 1]
    by_user = local.set_index("user")
    for user in sample:
        user_recs = recs[recs["user"] == user]
        user_test = test[test["user"] == user].drop(columns="user")
        for m in analysis.metrics:
            fn = getattr(accuracy, m.kind)
            value = fn(user_recs, user_test, k=m.k, **({"gain": m.gain} if m.kind.startswith("ndcg") else {}))
            assert value == pytest.approx(by_user.loc[user, m.name], abs=1e-9), (user, m.name)

    # Predictions: the item's training mean, missing for items never rated in training.
    n_unknown = int(preds["prediction"].isna().sum())
    assert n_unknown > 0
    local_pm = prediction_metrics(preds, missing="ignore")
    remote_pm = prediction_metrics(any_spark.createDataFrame(preds), missing="ignore")
    assert local_pm["n_missing"] == remote_pm["n_missing"] == n_unknown
    assert remote_pm == pytest.approx(local_pm, abs=1e-9, rel=0)
    assert local_pm["rmse"] == pytest.approx(rmse(preds, missing="ignore"), abs=1e-12)
    assert local_pm["user_mae"] == pytest.approx(user_metric(preds, mae, missing="ignore"), abs=1e-12)
