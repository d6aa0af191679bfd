"""Batch recommend / predict / recommend_sessions over Spark: equal to in-process, LensKit semantics."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs import batch
from spark_recs.data.movielens import load_ratings
from spark_recs.models.bias import Bias
from spark_recs.models.cooccurrence import ItemCoOccurrence
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.knn import ItemKNN
from spark_recs.models.mf import BiasedMF, ImplicitMF
from spark_recs.models.popular import Popular
from spark_recs.models.serving import input_example, serve
from spark_recs.models.topn import top_k
from spark_recs.serving.registry import log_model
from spark_recs.tracking import tracked_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Every user model, as a factory of an unfitted instance with a fixed seed where it has one.
USER_MODELS = {
    "Popular": Popular,
    "Bias": lambda: Bias(damping=5.0),
    "BiasedMF": lambda: BiasedMF(features=16, iterations=4, seed=1),
    "ImplicitMF": lambda: ImplicitMF(features=16, iterations=4, seed=1),
    "ItemKNN": lambda: ItemKNN(save_nbrs=200),
    "ItemKNN-implicit": lambda: ItemKNN(feedback="implicit", save_nbrs=200),
}


# ---- top-k -----------------------------------------------------------------------------------------


def test_top_k_orders_by_score_then_lower_item_under_ties():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0], [5.0, 1.0, 5.0, 4.0, 0.0]])
    items, values = top_k(scores, 2)
    assert items.tolist() == [[1, 2], [0, 1], [0, 2]]
    assert values.tolist() == [[3.0, 3.0], [0.0, 0.0], [5.0, 5.0]]
    items, _ = top_k(scores, 4)
    assert items.tolist() == [[1, 2, 4, 3], [0, 1, 2, 3], [0, 2, 3, 1]]


def test_top_k_caps_at_catalogue_and_handles_empty():
    items, _ = top_k(torch.tensor([[0.5, 0.1]]), 10)
    assert items.tolist() == [[0, 1]]
    items, values = top_k(torch.empty(0, 3), 2)
    assert items.shape[0] == 0 and values.shape[0] == 0


def test_top_k_agrees_with_a_full_lexicographic_sort():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (50, 40), generator=generator).float()  # many ties
    items, values = top_k(scores, 7)
    for row in range(50):
        expected = sorted(range(40), key=lambda i: (-scores[row, i].item(), i))[:7]
        assert items[row].tolist() == expected
        assert values[row].tolist() == scores[row, expected].tolist()


# ---- users: semantics on a hand-made case ----------------------------------------------------------

RATINGS = pd.DataFrame(
    {
        "user": [1, 1, 2, 2, 3, 3, 3, 4],
        "item": [10, 20, 10, 30, 10, 20, 40, 50],
        "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 4.0, 5.0, 3.0],
    }
)  # counts: 10 -> 3, 20 -> 2, 30, 40, 50 -> 1


def _lists(frame: pd.DataFrame, user_col="user") -> dict:
    frame = frame.sort_values([user_col, "rank"])
    return {u: g["item"].tolist() for u, g in frame.groupby(user_col)}


def test_recommend_excludes_rated_items_and_ties_go_to_the_lower_id(any_spark, caplog):
    model = Popular().fit(RATINGS)
    with caplog.at_level(logging.WARNING, logger="spark_recs.batch"):
        got = batch.recommend(model, [1, 3, 99], 3, spark=any_spark).toPandas()
    assert _lists(got) == {1: [30, 40, 50], 3: [30, 50], 99: [10, 20, 30]}
    assert got.groupby("user")["rank"].apply(list).to_dict() == {1: [1, 2, 3], 3: [1, 2], 99: [1, 2, 3]}
    assert "1 rows have users unknown to the model" in caplog.text
    assert list(got.columns) == ["user", "rank", "item", "score"]


def test_n_none_returns_every_candidate_and_duplicates_are_recommended_once(any_spark):
    model = Popular().fit(RATINGS)
    got = batch.recommend(model, any_spark.createDataFrame(pd.DataFrame({"user": [2, 2]})), None)
    assert _lists(got.toPandas()) == {2: [20, 40, 50]}


@pytest.mark.parametrize("form", ["dataframe", "dict", "function"])
def test_candidates_replace_the_default_exclusion(any_spark, form):
    model = Popular().fit(RATINGS)
    chosen = {1: [20, 30, 777], 2: [50]}  # 777 is unknown to the model; user 3 has no candidates
    if form == "dataframe":
        rows = [(u, i) for u, items in chosen.items() for i in items]
        candidates = any_spark.createDataFrame(pd.DataFrame(rows, columns=["user", "item"]))
    elif form == "dict":
        candidates = chosen
    else:
        candidates = chosen.get
    got = batch.recommend(model, [1, 2, 3], 5, candidates=candidates, spark=any_spark).toPandas()
    # User 1 rated 20, yet explicit candidates are recommended as given (LensKit semantics).
    assert _lists(got) == {1: [20, 30], 2: [50]}


def test_string_ids_and_custom_column_names(any_spark):
    ratings = RATINGS.assign(user=RATINGS["user"].map("u{}".format), item=RATINGS["item"].map("i{}".format))
    model = Popular().fit(ratings)
    users = any_spark.createDataFrame(pd.DataFrame({"customer": ["u1", "nobody"]}))
    got = batch.recommend(model, users, 2, user_col="customer", item_col="product").toPandas()
    assert list(got.columns) == ["customer", "rank", "product", "score"]
    assert _lists(got.rename(columns={"product": "item"}), "customer") == {
        "nobody": ["i10", "i20"],
        "u1": ["i30", "i40"],
    }


def test_predict_keeps_every_column_and_reports_unknowns(any_spark, caplog):
    model = Popular().fit(RATINGS)
    pairs = pd.DataFrame({"user": [1, 99, 2], "item": [20, 10, 12345], "rating": [4.0, 3.0, 1.0]})
    with caplog.at_level(logging.WARNING, logger="spark_recs.batch"):
        got = batch.predict(model, pairs, spark=any_spark).toPandas().sort_values("user")
    assert list(got.columns) == ["user", "item", "rating", "prediction"]
    assert got["rating"].tolist() == [4.0, 1.0, 3.0]
    # Popular predicts the count for anyone (its documented fallback); an unknown item has no prediction.
    assert got["prediction"].tolist()[0] == 2.0 and np.isnan(got["prediction"].tolist()[1])
    assert got["prediction"].tolist()[2] == 3.0
    assert "1 rows have users unknown" in caplog.text and "1 rows have items unknown" in caplog.text


def test_output_writes_a_table_and_reads_it_back(spark, tmp_path):
    model = Popular().fit(RATINGS)
    got = batch.recommend(model, [4], 2, spark=spark, output=str(tmp_path / "recs"))
    assert (tmp_path / "recs").exists()
    assert _lists(got.toPandas()) == {4: [10, 20]}


def test_session_models_are_refused_by_recommend(spark):
    with pytest.raises(TypeError, match="recommend_sessions"):
        batch.recommend(ItemCoOccurrence().fit(np.array([0, 0]), np.array([1, 2])), [1], 2, spark=spark)


# ---- users: every model, Spark equals in-process on ml-latest-small --------------------------------


@pytest.fixture(scope="module")
def movielens(spark):
    ratings = load_ratings(spark, shared_data("ml-latest-small")).accepted.toPandas()
    rng = np.random.default_rng(7)
    test_mask = rng.random(len(ratings)) < 0.1
    return ratings[~test_mask].reset_index(drop=True), ratings[test_mask].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(movielens):
    train, _ = movielens
    return {name: factory().fit(train) for name, factory in USER_MODELS.items()}


@pytest.mark.parametrize("name", USER_MODELS)
def test_spark_recommend_equals_in_process_on_movielens(any_spark, fitted, movielens, name):
    model = fitted[name]
    users = list(np.random.default_rng(1).choice(model.user_vocab.ids, 30, replace=False)) + [10**9]
    got = batch.recommend(model, [int(u) for u in users], 10, spark=any_spark, batch_size=7).toPandas()
    for user in users:
        expected = model.recommend(user, 10)
        mine = got[got["user"] == user].sort_values("rank")
        assert mine["item"].tolist() == expected["item"].tolist(), user
        assert mine["rank"].tolist() == list(range(1, len(expected) + 1))
        np.testing.assert_allclose(mine["score"], expected["score"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", USER_MODELS)
def test_spark_predict_equals_in_process_on_movielens(any_spark, fitted, movielens, name):
    model = fitted[name]
    _, test = movielens
    pairs = test[["user", "item", "rating"]].head(2000)
    got = batch.predict(model, pairs, spark=any_spark).toPandas()
    merged = got.merge(pairs, on=["user", "item", "rating"], how="outer", validate="one_to_one")
    assert len(merged) == len(pairs)
    for user, group in merged.groupby("user"):
        expected = model.predict_for_user(user, group["item"]).to_numpy()
        np.testing.assert_allclose(group["prediction"], expected, rtol=0, atol=1e-5, equal_nan=True)


# ---- references: MLflow (files and train_isolated: tests/serving/test_isolated.py) --------------------


def test_registered_mlflow_model_is_a_reference(any_spark, mlflow_uri):
    model = Popular().fit(RATINGS)
    with tracked_run("batch-test", tracking_uri=mlflow_uri):
        log_model(model, registered_model_name="popular-batch-test")
        log_model(
            Popular().fit(RATINGS.head(3)), registered_model_name="popular-batch-test", aliases=["champion"]
        )
    got = batch.recommend("models:/popular-batch-test/1", [2], 2, spark=any_spark).toPandas()
    assert _lists(got) == {2: [20, 40]}
    # The alias names version 2, fitted on the first three rows only (items 10 and 20).
    got = batch.recommend("models:/popular-batch-test@champion", [4], 5, spark=any_spark).toPandas()
    assert _lists(got) == {4: [10, 20]}


# ---- sessions ---------------------------------------------------------------------------------------


def _events(n_sessions=60, seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for pos in range(rng.integers(1, 6)):
            rows.append((f"s{s}", int(rng.integers(0, 12)), float(1000 * s + pos)))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.mark.parametrize("every_prefix", [False, True])
def test_recommend_sessions_with_popular(any_spark, every_prefix):
    events = _events()
    items = [0, 1, 1, 2, 2, 2, 5, 5, 7, 7, 7, 7, 3, 4, 6, 8, 9, 10, 11]
    model = Popular().fit(pd.DataFrame({"user": 0, "item": items}))
    got = batch.recommend_sessions(model, any_spark.createDataFrame(events), 3, every_prefix=every_prefix)
    got = got.toPandas()
    # Independent expectation: Popular's list is the 3 most counted items, ties to the lower id.
    lengths = events.groupby("SessionId").size()
    assert len(got) == 3 * (lengths.sum() if every_prefix else len(lengths))
    for _, group in got.groupby(["SessionId", "position"]):
        assert group.sort_values("rank")["item"].tolist() == [7, 2, 1]
    positions = got.groupby("SessionId")["position"].max()
    assert (positions == lengths.loc[positions.index]).all()


def test_sessions_are_never_split_across_arrow_batches(spark):
    events = _events(n_sessions=200, seed=5)
    # Training sessions where item i is always followed by item i+1 (mod 12), and once by item 0.
    chain = np.r_[np.arange(12), np.arange(12), 3, 0]
    sessions = np.r_[np.zeros(24, dtype=int), 1, 1]
    model = ItemCoOccurrence().fit(sessions, chain, n_items=12)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        got = batch.recommend_sessions(model, spark.createDataFrame(events), 1, every_prefix=True).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    ordered = events.sort_values(["SessionId", "Time", "ItemId"])
    ordered["position"] = ordered.groupby("SessionId").cumcount() + 1
    merged = ordered.merge(got, on=["SessionId", "position"], how="outer", validate="one_to_one")
    assert len(merged) == len(events)
    # The top item after each event is that event's successor: only true if the worker saw the right prefix.
    assert (merged["item"] == (merged["ItemId"] + 1) % 12).all()
    assert np.allclose(merged["score"], np.where(merged["ItemId"] == 11, 1.0, 2.0))


@pytest.mark.parametrize("every_prefix", [False, True])
def test_a_dense_index_model_skips_events_outside_its_items(any_spark, caplog, every_prefix):
    # Item i is followed by i + 1 (mod 3), twice each; the model knows items 0, 1 and 2 only.
    model = ItemCoOccurrence().fit(np.zeros(7, dtype=int), np.array([0, 1, 2, 0, 1, 2, 0]), n_items=3)
    sessions = {"a": [1, 3, -1], "b": [7], "c": [0, None, 2, 9]}
    rows = [(s, item, float(t)) for s, items in sessions.items() for t, item in enumerate(items)]
    events = any_spark.createDataFrame(
        pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).astype({"ItemId": "Int64"})
    )
    with caplog.at_level(logging.WARNING, logger="spark_recs.batch"):
        got = batch.recommend_sessions(model, events, 2, every_prefix).toPandas()
    assert "1 of 3 sessions skipped" in caplog.text and "5 events on unknown items ignored" in caplog.text
    # In-process: the session's known items only, positions counting those.
    expected = []
    for session, known in {"a": [1], "c": [0, 2]}.items():
        for position in range(1, len(known) + 1) if every_prefix else [len(known)]:
            top, scores = top_k(model.score_sessions([np.array(known[:position])]), 2)
            for rank, (item, score) in enumerate(zip(top[0].tolist(), scores[0].tolist()), 1):
                expected.append((session, position, rank, item, score))
    expected = pd.DataFrame(expected, columns=["SessionId", "position", "rank", "item", "score"])
    keys = ["SessionId", "position", "rank"]
    pd.testing.assert_frame_equal(
        got.sort_values(keys).reset_index(drop=True), expected, check_dtype=False, check_exact=True
    )
    # Independently: the top item after each known event is its successor.
    firsts = got[got["rank"] == 1].sort_values(["SessionId", "position"])
    assert firsts["item"].tolist() == ([2, 1, 0] if every_prefix else [2, 0])
    if not every_prefix:  # the MLflow pyfunc's serve() skips the same events and answers the same lists
        frame = pd.DataFrame(rows, columns=["session", "item", "Time"]).astype({"item": "Int64"})
        served = serve(model, frame, 2)
        last = got.drop(columns="position").rename(columns={"SessionId": "session"})
        pd.testing.assert_frame_equal(
            served.sort_values(["session", "rank"]).reset_index(drop=True),
            last.sort_values(["session", "rank"]).reset_index(drop=True),
            check_dtype=False,
        )
        assert input_example(model)["item"].tolist() == [0, 1]


@pytest.fixture(scope="module")
def rsc15():
    folder = shared_data("sessions/rsc15_100k")
    train = pd.read_csv(folder / "yoochoose-clicks-100k_train_full.txt", sep="\t")
    test = pd.read_csv(folder / "yoochoose-clicks-100k_test.txt", sep="\t")
    model = GRU4Rec(layers=[32], batch_size=32, n_sample=256, n_epochs=1, learning_rate=0.2, seed=3).fit(
        train
    )
    return model, test[test["SessionId"].isin(test["SessionId"].unique()[:300])]


@pytest.mark.parametrize("every_prefix", [False, True])
def test_gru4rec_sessions_on_spark_equal_in_process(any_spark, rsc15, every_prefix):
    model, test = rsc15
    got = batch.recommend_sessions(model, any_spark.createDataFrame(test), 5, every_prefix, batch_size=64)
    got = got.toPandas()
    ordered = test.sort_values(["SessionId", "Time", "ItemId"])
    n_rows = 0
    for session, events in ordered.groupby("SessionId"):
        known = model.item_indices(events["ItemId"].to_numpy())
        known = known[known >= 0]
        prefixes = [known[: p + 1] for p in range(len(known))] if every_prefix else [known]
        if not len(known):
            continue
        items, scores = top_k(model.score_sessions(prefixes), 5)
        mine = got[got["SessionId"] == session].sort_values(["position", "rank"])
        assert mine["item"].tolist() == model.item_ids[items.reshape(-1).numpy()].tolist()
        np.testing.assert_allclose(mine["score"], scores.reshape(-1).numpy(), rtol=0, atol=1e-5)
        n_rows += items.numel()
    assert len(got) == n_rows > 0


def test_gru4rec_served_from_the_mlflow_registry(spark, rsc15, mlflow_uri):
    model, test = rsc15
    with tracked_run("batch-test", tracking_uri=mlflow_uri):
        log_model(model, registered_model_name="gru4rec-batch-test")
    events = spark.createDataFrame(test)
    keys = ["SessionId", "rank"]
    via_registry = batch.recommend_sessions("models:/gru4rec-batch-test/1", events, 5).toPandas()
    direct = batch.recommend_sessions(model, events, 5).toPandas()
    pd.testing.assert_frame_equal(
        via_registry.sort_values(keys).reset_index(drop=True), direct.sort_values(keys).reset_index(drop=True)
    )
