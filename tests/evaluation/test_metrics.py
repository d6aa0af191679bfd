"""Next-item Recall/MRR from recommendation lists, hand-computed."""

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from spark_recs.evaluation.metrics import next_item_metrics, next_item_targets


def test_next_item_targets_and_metrics_hand_computed(any_spark):
    events = pd.DataFrame(
        {"SessionId": [1, 1, 1, 2, 2], "ItemId": [10, 11, 12, 20, 21], "Time": [3.0, 1.0, 2.0, 5.0, 6.0]}
    )
    targets = (
        next_item_targets(any_spark.createDataFrame(events)).toPandas().sort_values(["SessionId", "position"])
    )
    # Session 1 ordered by time is 11, 12, 10: targets 12 (after pos 1) and 10 (after pos 2); session 2: 21.
    assert targets[["SessionId", "position", "target"]].values.tolist() == [
        [1, 1, 12],
        [1, 2, 10],
        [2, 1, 21],
    ]

    recs = pd.DataFrame(
        {
            "SessionId": [1, 1, 1, 1, 2, 2],
            "position": [1, 1, 2, 2, 1, 1],
            "rank": [1, 2, 1, 2, 1, 2],
            "item": [12, 10, 11, 12, 20, 99],
        }
    )
    got = next_item_metrics(any_spark.createDataFrame(recs), any_spark.createDataFrame(targets), [1, 2])
    # Ranks of the targets: 1 (12), missing (10), missing (21).
    assert got["recall@1"] == pytest.approx(1 / 3)
    assert got["recall@2"] == pytest.approx(1 / 3)
    assert got["mrr@2"] == pytest.approx(1 / 3)
    assert got["n_targets"] == 3


def test_metrics_are_the_same_bits_whatever_the_partitioning(any_spark):
    # 3,000 targets (one per session), each with a one-item list holding it at a random rank 1..30: a sum of
    # 1 / rank in Spark changes in the last bits with the partitioning, the counts behind the figures do not.
    ranks = np.random.default_rng(0).integers(1, 31, 3000)
    sessions = np.arange(len(ranks))
    targets = any_spark.createDataFrame(pd.DataFrame({"SessionId": sessions, "position": 1, "target": 7}))
    recs = any_spark.createDataFrame(
        pd.DataFrame({"SessionId": sessions, "position": 1, "rank": ranks, "item": 7})
    )
    got = [next_item_metrics(recs.repartition(k), targets.repartition(k), [5, 20]) for k in (1, 3, 7)]
    assert got[0] == got[1] == got[2]
    n = len(ranks)
    assert got[0]["recall@20"] == (ranks <= 20).sum() / n and got[0]["n_targets"] == n
    exact_mrr = sum(Fraction(1, int(r)) for r in ranks[ranks <= 5]) / n
    assert got[0]["mrr@5"] == pytest.approx(float(exact_mrr), rel=1e-15)


def test_a_target_listed_twice_is_an_error(any_spark):
    # The list after (session 1, position 1) comes twice: the target would count twice.
    targets = any_spark.createDataFrame(
        pd.DataFrame({"SessionId": [1, 1], "position": [1, 2], "target": [5, 6]})
    )
    recs = any_spark.createDataFrame(
        pd.DataFrame({"SessionId": [1, 1, 1], "position": [1, 1, 2], "rank": [1, 1, 1], "item": [5, 5, 9]})
    )
    with pytest.raises(ValueError, match=r"^recs: 1 target\(s\) appear more than once in their \(SessionId"):
        next_item_metrics(recs, targets)
