"""Next-item Recall/MRR from recommendation lists, hand-computed."""

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
