"""Batch session recommendations over Spark: exact top-k with ties, sessions intact, equal to in-process."""

import numpy as np
import pandas as pd
import pytest
import torch

from spark_recs.batch import recommend_sessions, top_k
from spark_recs.models.cooccurrence import ItemCoOccurrence
from spark_recs.models.popular import Popular


def test_top_k_orders_by_score_then_lower_item_under_ties():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    items, values = top_k(scores, 2)
    assert items.tolist() == [[1, 2], [0, 1]]
    assert values.tolist() == [[3.0, 3.0], [0.0, 0.0]]
    items, _ = top_k(scores, 4)
    assert items.tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]


def test_top_k_caps_at_catalogue_and_handles_empty():
    items, _ = top_k(torch.tensor([[0.5, 0.1]]), 10)
    assert items.tolist() == [[0, 1]]
    items, values = top_k(torch.empty(0, 3), 2)
    assert items.shape[0] == 0 and values.shape[0] == 0


def _events(n_sessions=60, seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for pos in range(rng.integers(1, 6)):
            rows.append((f"s{s}", int(rng.integers(0, 12)), float(1000 * s + pos)))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


@pytest.mark.parametrize("every_prefix", [False, True])
def test_recommend_sessions_matches_in_process(any_spark, every_prefix):
    events = _events()
    model = Popular().fit(np.array([0, 1, 1, 2, 2, 2, 5, 5, 7, 7, 7, 7]), n_items=12)
    df = any_spark.createDataFrame(events)
    got = recommend_sessions(model, df, 3, every_prefix=every_prefix).toPandas()

    # Independent expectation: Popular's list is the 3 most counted items, ties to the lower index.
    expected_items = [7, 2, 1]
    lengths = events.groupby("SessionId").size()
    expected_rows = 3 * (lengths.sum() if every_prefix else len(lengths))
    assert len(got) == expected_rows
    for (_, _), group in got.groupby(["SessionId", "position"]):
        assert group.sort_values("rank")["item"].tolist() == expected_items
        assert sorted(group["rank"]) == [1, 2, 3]
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
        got = recommend_sessions(model, spark.createDataFrame(events), 1, every_prefix=True).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    ordered = events.sort_values(["SessionId", "Time", "ItemId"])
    ordered["position"] = ordered.groupby("SessionId").cumcount() + 1
    merged = ordered.merge(got, on=["SessionId", "position"], how="outer", validate="one_to_one")
    assert len(merged) == len(events)
    # The top item after each event is that event's successor: only true if the worker saw the right prefix.
    assert (merged["item"] == (merged["ItemId"] + 1) % 12).all()
    assert np.allclose(merged["score"], np.where(merged["ItemId"] == 11, 1.0, 2.0))
