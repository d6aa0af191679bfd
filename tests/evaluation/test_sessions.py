"""Next-item evaluation of session models: batch_eval against brute force, in process and sharded over Spark
(the ranks and counts themselves: tests/core/test_ranking.py)."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.core import ranking
from spark_recs.evaluation import sessions
from spark_recs.evaluation.beyond import beyond_accuracy
from spark_recs.evaluation.sessions import batch_eval, evaluate_sessions
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.topn import top_k

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_core_ranks_and_counts_are_importable_from_here():
    assert sessions.target_ranks is ranking.target_ranks and sessions.RankCounts is ranking.RankCounts


def cycle_sessions(n_sessions, seed, n_items=15):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start, length = int(rng.integers(0, n_items)), int(rng.integers(1, 6))
        rows += [
            (s, 100 + (start + p * int(rng.integers(1, 3))) % n_items, s * 10.0 + p) for p in range(length)
        ]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.fixture(scope="module")
def gru():
    params = dict(layers=[12], batch_size=8, n_sample=6, n_epochs=2, learning_rate=0.1, dropout_p_hidden=0.3)
    return GRU4Rec(**params).fit(cycle_sessions(200, 0))


def brute_force(gru, test, cutoffs, mode):
    """Recall/MRR by scoring every prefix on its own and ranking with NumPy."""
    hits = {c: [] for c in cutoffs}
    for _, session in test.sort_values(["Time", "ItemId"]).groupby("SessionId"):
        items = [i for i in gru.item_indices(session["ItemId"].to_numpy()) if i >= 0]
        for p in range(len(items) - 1):
            scores = gru.score_sessions([items[: p + 1]])[0].numpy()
            target = scores[items[p + 1]]
            higher, equal = (scores > target).sum(), (scores == target).sum()
            rank = {
                "standard": higher + 1,
                "conservative": higher + equal,
                "median": higher + (equal - 1) / 2 + 1,
                "ordinal": higher + (scores[: items[p + 1]] == target).sum() + 1,
            }
            for c in cutoffs:
                hits[c].append(1 / rank[mode] if rank[mode] <= c else 0.0)
    return {c: np.mean(np.array(h) > 0) for c, h in hits.items()}, {c: np.mean(h) for c, h in hits.items()}


@pytest.mark.parametrize("mode", ["standard", "conservative", "median", "ordinal"])
def test_batch_eval_equals_scoring_every_prefix_alone(gru, mode):
    test = cycle_sessions(40, 1)
    recall, mrr = batch_eval(gru, test, cutoff=[1, 5, 20], batch_size=7, mode=mode)
    expected_recall, expected_mrr = brute_force(gru, test, [1, 5, 20], mode)
    for c in (1, 5, 20):
        assert recall[c] == pytest.approx(expected_recall[c]) and mrr[c] == pytest.approx(expected_mrr[c])


def test_batch_size_does_not_change_the_result(gru):
    test = cycle_sessions(40, 2)
    results = [batch_eval(gru, test, cutoff=[3, 10], batch_size=b) for b in (1, 5, 512)]
    assert results[0] == results[1] == results[2]


def test_events_at_the_same_time_go_by_item_whatever_the_row_order(any_spark, gru):
    test = cycle_sessions(40, 5)
    test["Time"] = (test["Time"] // 2).astype(float)  # pairs of events share a time
    expected_recall, expected_mrr = brute_force(gru, test, [1, 5], "conservative")
    reversed_rows = test.iloc[::-1]
    for data in (reversed_rows, any_spark.createDataFrame(reversed_rows).repartition(3)):
        result = evaluate_sessions(gru, data, cutoff=[1, 5])
        assert result.recall == pytest.approx(expected_recall) and result.mrr == pytest.approx(expected_mrr)


def test_unknown_items_are_dropped_and_counted_and_short_sessions_give_nothing(gru):
    test = pd.DataFrame(
        {
            "SessionId": [1, 1, 1, 2, 3, 3],
            "ItemId": [100, 999, 101, 102, 998, 103],  # 999 and 998 were never trained on
            "Time": [0.0, 1.0, 2.0, 0.0, 0.0, 1.0],
        }
    )
    result = evaluate_sessions(gru, test, cutoff=[5])
    assert result.n_dropped_events == 2
    assert result.n_predictions == 1  # session 1 becomes 100 -> 101; sessions 2 and 3 have one known event
    assert result.n_sessions == 1
    empty = evaluate_sessions(gru, test[test["SessionId"] == 2], cutoff=[5])
    assert empty.n_predictions == 0 and empty.recall == {5: 0.0}


def test_missing_columns_are_reported(gru):
    with pytest.raises(ValueError, match="lacks column"):
        batch_eval(gru, pd.DataFrame({"SessionId": [1], "ItemId": [100]}))


@pytest.mark.slow
def test_rsc15_cross_entropy_configuration_reaches_published_accuracy_range():
    """Three epochs of the official RSC15 cross-entropy configuration on real data (about a minute)."""
    folder = shared_data("sessions/rsc15_100k")
    read = lambda name: pd.read_csv(folder / f"yoochoose-clicks-100k_{name}.txt", sep="\t")  # noqa: E731
    params = dict(
        loss="cross-entropy", layers=[100], n_epochs=3, batch_size=32, dropout_p_hidden=0.4, learning_rate=0.2,
        momentum=0.2, n_sample=2048, sample_alpha=0.5, bpreg=0.0, logq=1.0, elu_param=0.0,
    )  # fmt: skip
    gru = GRU4Rec(**params, seed=1).fit(read("train_full"))
    recall, mrr = batch_eval(gru, read("test"), cutoff=[20])
    # Ten epochs reach 0.68 / 0.357 (three seeds, benchmarks/gru4rec.py); Popular gets 0.09 / 0.03.
    assert recall[20] > 0.62 and mrr[20] > 0.32, (recall, mrr)


@pytest.mark.parametrize("mode", ["conservative", "median"])
def test_spark_sharded_evaluation_equals_in_process(any_spark, gru, mode):
    test = cycle_sessions(60, 4)
    local = evaluate_sessions(gru, test, cutoff=[1, 5, 20], batch_size=16, mode=mode)
    sharded = evaluate_sessions(
        gru, any_spark.createDataFrame(test), cutoff=[1, 5, 20], batch_size=16, mode=mode
    )
    assert sharded == local


@pytest.mark.slow
def test_spark_sharded_evaluation_equals_in_process_on_rsc15(spark):
    folder = shared_data("sessions/rsc15_100k")
    train = pd.read_csv(folder / "yoochoose-clicks-100k_train_full.txt", sep="\t")
    test = pd.read_csv(folder / "yoochoose-clicks-100k_test.txt", sep="\t")
    model = GRU4Rec(layers=[32], batch_size=32, n_sample=256, n_epochs=1, learning_rate=0.2).fit(train)
    local = evaluate_sessions(model, test, cutoff=[5, 20])
    sharded = evaluate_sessions(model, spark.createDataFrame(test), cutoff=[5, 20])
    assert sharded == local and local.n_predictions > 10_000


# ---- beyond accuracy of the top N after every event ----------------------------------------------------


class FixedScores:
    """Four items; after an event on item i the scores are SCORES[i] (a session model with known lists)."""

    SCORES = np.array([[0, 3, 2, 1], [1, 0, 3, 2], [1, 0, 3, 2], [3, 3, 0, 1]], dtype=np.float32)

    def item_indices(self, raw):
        return np.asarray(raw, dtype=np.int64)

    def next_item_scores(self, items, offsets, batch_size=512):
        current = np.concatenate([items[a : b - 1] for a, b in zip(offsets[:-1], offsets[1:])])
        following = np.concatenate([items[a + 1 : b] for a, b in zip(offsets[:-1], offsets[1:])])
        yield torch.as_tensor(self.SCORES[current]), torch.as_tensor(following)


def test_the_top_n_after_every_event_measured_beyond_accuracy_by_hand():
    # Predictions after the events on items 0, 1 (session 1) and 3 (session 2): three lists.
    test = pd.DataFrame({"SessionId": [1, 1, 1, 2, 2], "ItemId": [0, 1, 2, 3, 0], "Time": [1, 2, 3, 1, 2]})
    # Training sessions per item: item 0 in 1 session, 1 in 2, 2 in 1, 3 in none (of 2 sessions).
    train = pd.DataFrame({"SessionId": [7, 7, 8, 8], "ItemId": [0, 1, 1, 2]})
    result = evaluate_sessions(FixedScores(), test, cutoff=[2], train=train)
    # Top 2 after item 0: [1, 2]; after item 1: [2, 3]; after item 3: [0, 1] (tie 3 = 3: lower index first).
    # Exposure of items 0..3: 1, 2, 2, 1; item 3 has no training session, so it is outside the catalogue.
    assert result.n_predictions == 3
    assert result.beyond["coverage@2"] == 1.0  # items 0, 1, 2 all recommended
    known, users = np.array([1, 2, 2]), np.array([1, 2, 1])
    assert result.beyond["popularity@2"] == pytest.approx((known * users).sum() / known.sum())
    novelty = (known * -np.log2(users / 2)).sum() / known.sum()
    assert result.beyond["novelty@2"] == pytest.approx(novelty)
    # Overlaps of the three lists' pairs: {1,2}&{2,3} = 1, {1,2}&{0,1} = 1, {2,3}&{0,1} = 0.
    assert result.beyond["personalisation@2"] == pytest.approx(1 - (1 + 1 + 0) / 3 / 2)
    gini = ranking.gini(np.array([1, 2, 2]))
    assert result.beyond["gini@2"] == gini
    assert evaluate_sessions(FixedScores(), test, cutoff=[2]).beyond == {}  # no training sessions: none


def test_beyond_accuracy_of_sessions_equals_the_lists_measured_alone_on_every_engine(any_spark, gru):
    """The exposure counts against the top-N lists of every prefix, recommended one by one and measured by
    the list metrics (:func:`beyond_accuracy`), in process and sharded, on both engines."""
    train, test = cycle_sessions(200, 0), cycle_sessions(50, 6)
    lists = []
    for _, session in test.sort_values(["Time", "ItemId"]).groupby("SessionId"):
        items = [i for i in gru.item_indices(session["ItemId"].to_numpy()) if i >= 0]
        for p in range(len(items) - 1):
            top, _ = top_k(gru.score_sessions([items[: p + 1]]), 5)
            ranked = gru.item_vocab.ids[top[0].numpy()]
            lists += [(len(lists) // 5, r + 1, i) for r, i in enumerate(ranked)]  # a list per prediction
    frame = pd.DataFrame(lists, columns=["user", "rank", "item"])
    expected = beyond_accuracy(frame, train.rename(columns={"SessionId": "user", "ItemId": "item"}), 5)
    local = evaluate_sessions(gru, test, cutoff=[5], batch_size=16, train=train)
    sharded = evaluate_sessions(
        gru,
        any_spark.createDataFrame(test),
        cutoff=[5],
        batch_size=16,
        train=any_spark.createDataFrame(train),
    )
    assert local.beyond == pytest.approx(expected, rel=1e-12) and sharded == local
    assert local.beyond["coverage@5"] > 0.3
