"""Synthetic sessions and ratings: exact sizes, determinism, independence of partitioning and engine, and
enough structure for the models that use them (sequences beat popularity, biases beat the mean)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spark_recs.data.split import gru4rec_time_split
from spark_recs.data.synthetic import START_TIME, synthetic_ratings, synthetic_sessions

DAY = 86400


def frame(df) -> pd.DataFrame:
    pdf = df.toPandas()
    return pdf.sort_values(list(pdf.columns)).reset_index(drop=True)


def test_sessions_are_exact_deterministic_and_independent_of_partitioning(any_spark):
    df = synthetic_sessions(any_spark, 20_000, 300, seed=3, partitions=2, block_size=4096)
    assert df.columns == ["SessionId", "ItemId", "Time"]
    assert dict(df.dtypes) == {"SessionId": "bigint", "ItemId": "bigint", "Time": "double"}
    pdf = frame(df)
    assert len(pdf) == 20_000
    assert pdf.ItemId.between(1, 300).all() and pdf.SessionId.min() >= 1
    assert pdf.Time.between(START_TIME, START_TIME + 31 * DAY).all()
    lengths = pdf.groupby("SessionId").size()
    assert (lengths == 1).mean() > 0.15 and 3.5 < lengths.mean() < 4.5
    again = synthetic_sessions(any_spark, 20_000, 300, seed=3, partitions=5, block_size=4096)
    assert frame(again).equals(pdf)
    other = synthetic_sessions(any_spark, 20_000, 300, seed=4, block_size=4096)
    assert not frame(other).equals(pdf)


def test_sessions_have_zipf_popularity_and_item_transitions(connect_spark):
    pdf = synthetic_sessions(connect_spark, 60_000, 500, seed=0).toPandas().sort_values(["SessionId", "Time"])
    counts = pdf.ItemId.value_counts()
    assert counts.iloc[0] > 20 * counts.median()
    nxt = pdf.assign(Next=pdf.groupby("SessionId").ItemId.shift(-1)).dropna()
    train, test = nxt[nxt.SessionId % 5 != 0], nxt[nxt.SessionId % 5 == 0]
    best_next = train.groupby("ItemId").Next.agg(lambda s: s.value_counts().index[0])
    sequence_hits = (test.ItemId.map(best_next) == test.Next).mean()
    popularity_hits = (test.Next == train.Next.value_counts().index[0]).mean()
    assert sequence_hits > 0.3 > 3 * popularity_hits


def test_sessions_feed_the_gru4rec_split(connect_spark):
    df = synthetic_sessions(connect_spark, 30_000, 400, seed=1)
    counts = gru4rec_time_split(df, 1).counts()
    assert counts["rejected:short_session"] > 0
    assert counts["test"] > 0 and counts["valid"] > 0 and counts["train_tr"] > 20 * counts["test"]


def test_ratings_are_deterministic_valid_and_independent_of_partitioning(any_spark):
    df = synthetic_ratings(any_spark, 200, 500, 8_000, seed=2, partitions=2)
    assert df.columns == ["user", "item", "rating", "timestamp"]
    assert dict(df.dtypes) == {"user": "bigint", "item": "bigint", "rating": "double", "timestamp": "bigint"}
    pdf = frame(df)
    assert 0.8 * 8_000 < len(pdf) <= 8_000 and not pdf.duplicated(["user", "item"]).any()
    assert set(pdf.rating) <= set(np.arange(1, 11) / 2) and pdf.rating.nunique() >= 8
    assert set(pdf.user) == set(range(1, 201)) and pdf.item.between(1, 500).all()
    assert pdf.timestamp.between(START_TIME, START_TIME + 3 * 366 * DAY).all()
    assert frame(synthetic_ratings(any_spark, 200, 500, 8_000, seed=2, partitions=7)).equals(pdf)
    assert not frame(synthetic_ratings(any_spark, 200, 500, 8_000, seed=5)).equals(pdf)


def test_ratings_carry_user_and_item_biases(connect_spark):
    pdf = synthetic_ratings(connect_spark, 300, 400, 30_000, seed=0).toPandas()
    train, test = pdf[pdf.index % 5 != 0], pdf[pdf.index % 5 == 0]
    mu = train.rating.mean()
    b_i = (train.rating - mu).groupby(train.item).sum() / (train.groupby("item").size() + 5)
    b_u = (train.rating - mu - train.item.map(b_i)).groupby(train.user).sum() / (
        train.groupby("user").size() + 5
    )
    predicted = mu + test.item.map(b_i).fillna(0) + test.user.map(b_u).fillna(0)
    rmse_bias = np.sqrt(((test.rating - predicted) ** 2).mean())
    rmse_mean = np.sqrt(((test.rating - mu) ** 2).mean())
    assert rmse_bias < 0.9 * rmse_mean


def test_generators_are_identical_on_classic_and_connect(spark, connect_spark, monkeypatch):
    on_connect = [
        frame(synthetic_sessions(connect_spark, 5_000, 100)),
        frame(synthetic_ratings(connect_spark)),
    ]
    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED")
    on_classic = [frame(synthetic_sessions(spark, 5_000, 100)), frame(synthetic_ratings(spark))]
    assert all(a.equals(b) for a, b in zip(on_classic, on_connect, strict=True))


def test_custom_column_names_and_bad_arguments(connect_spark):
    df = synthetic_sessions(connect_spark, 10, 5, session_key="s", item_key="i", time_key="t")
    assert df.columns == ["s", "i", "t"] and df.count() == 10
    assert synthetic_ratings(connect_spark, 3, 4, 10, user="u", rating="r").columns == [
        "u",
        "item",
        "r",
        "timestamp",
    ]
    with pytest.raises(ValueError):
        synthetic_sessions(connect_spark, 0)
    with pytest.raises(ValueError):
        synthetic_ratings(connect_spark, n_users=0)
