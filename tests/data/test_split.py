"""Splits: GRU4Rec time split (checked against the published rsc15 files and a pandas port of GRU4Rec's
preprocess.py), the by-fraction session split, LensKit crossfolds, temporal holdout and recnn's user split.

Classic Spark jobs are slow on a shared 2-core machine, so the core invariants run on both engines
(``any_spark``), the parity test proves both engines give identical splits, and the remaining detailed
checks run on the pysail Connect session only. The file holds pandas ports of the reference splits, hence
its length.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from spark_recs.data.split import (
    SampleFrac,
    SampleN,
    gru4rec_time_split,
    partition_rows,
    partition_users,
    preprocess_sessions,
    sample_users,
    temporal_holdout,
    time_split,
    train_valid_test_split,
    user_split,
)
from spark_recs.runtime import is_connect

DAY = 86400
SESSION_COLS = ["SessionId", "ItemId", "Time"]
SESSION_SCHEMA = "SessionId long, ItemId long, Time double"
RATING_COLS = ["user", "item", "rating", "timestamp"]
RATING_SCHEMA = "user long, item long, rating double, timestamp long"


def examples(spark, classic: int = 3, connect: int = 15):
    """Hypothesis settings for a property checked inside a test: classic gets fewer examples (slow jobs)."""
    n = connect if is_connect(spark) else classic
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


def frame(df) -> pd.DataFrame:
    """A Spark DataFrame (or pandas) as pandas, rows sorted, for exact comparison."""
    pdf = df if isinstance(df, pd.DataFrame) else df.toPandas()
    return pdf.sort_values(list(pdf.columns)).reset_index(drop=True)


def assert_same_rows(actual, expected) -> None:
    a, e = frame(actual), frame(expected)
    pd.testing.assert_frame_equal(a, e[list(a.columns)].astype(a.dtypes.to_dict()), check_dtype=False)


def labelled(parts, names) -> pd.DataFrame:
    """Several Spark DataFrames as one pandas frame with a ``part`` column (one Spark job)."""
    tagged = [df.withColumn("part", F.lit(name)) for df, name in zip(parts, names, strict=True)]
    return reduce(lambda a, b: a.union(b), tagged).toPandas()


def folds_frame(pairs) -> pd.DataFrame:
    """The test sets of an iterator of TTPairs as one pandas frame with a ``fold`` column."""
    pairs = list(pairs)
    return labelled([p.test for p in pairs], range(len(pairs))).rename(columns={"part": "fold"})


def rsc15_path(name: str):
    return shared_data(f"sessions/rsc15_100k/yoochoose-clicks-100k_{name}.txt")


def read_rsc15(spark, name: str):
    return spark.read.csv(str(rsc15_path(name)), sep="\t", header=True, inferSchema=True)


# --- pandas references: GRU4Rec's examples/rsc15/preprocess.py, step for step ----------------------


def reference_time_split(data: pd.DataFrame, days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    tmax = data.Time.max()
    ends = data.groupby("SessionId").Time.max()
    train = data[data.SessionId.isin(ends[ends < tmax - days * DAY].index)]
    test = data[data.SessionId.isin(ends[ends >= tmax - days * DAY].index)]
    test = test[test.ItemId.isin(train.ItemId)]
    lengths = test.groupby("SessionId").size()
    return train, test[test.SessionId.isin(lengths[lengths >= 2].index)]


def reference_gru4rec(data: pd.DataFrame, days: float, min_item_support: int = 5) -> dict[str, pd.DataFrame]:
    lengths = data.groupby("SessionId").size()
    data = data[data.SessionId.isin(lengths[lengths > 1].index)]
    supports = data.groupby("ItemId").size()
    data = data[data.ItemId.isin(supports[supports >= min_item_support].index)]
    lengths = data.groupby("SessionId").size()
    data = data[data.SessionId.isin(lengths[lengths >= 2].index)]
    train_full, test = reference_time_split(data, days)
    train_tr, valid = reference_time_split(train_full, days)
    return {"train_full": train_full, "test": test, "train_tr": train_tr, "valid": valid}


def parts_of(result) -> dict[str, pd.DataFrame]:
    rows = result.rows.toPandas()
    parts = {p: rows[rows.part == p][SESSION_COLS] for p in ("train_tr", "valid", "test")}
    in_full = rows.part.isin(["train_tr", "valid"]) | rows.reason.fillna("").str.startswith("valid_")
    return parts | {"train_full": rows[in_full][SESSION_COLS], "rejected": rows[rows.part == "rejected"]}


def check_gru4rec_invariants(result, n_in: int, parts: dict[str, pd.DataFrame]) -> None:
    assert sum(len(parts[p]) for p in ("train_tr", "valid", "test", "rejected")) == n_in
    sessions = [set(parts[p].SessionId) for p in ("train_tr", "valid", "test")]
    assert all(not (a & b) for i, a in enumerate(sessions) for b in sessions[i + 1 :])
    assert set(parts["test"].ItemId) <= set(parts["train_full"].ItemId)
    assert set(parts["valid"].ItemId) <= set(parts["train_tr"].ItemId)
    rejected = parts["rejected"]
    for train, test, cutoff in [
        ("train_full", "test", result.test_cutoff),
        ("train_tr", "valid", result.valid_cutoff),
    ]:
        if len(parts[test]):
            # A held-out session is judged by its last event before the unseen-item filter, as in GRU4Rec.
            held = pd.concat(
                [parts[test], rejected[rejected.reason.str.startswith(f"{test}_")][SESSION_COLS]]
            )
            assert held.groupby("SessionId").Time.max()[parts[test].SessionId.unique()].min() >= cutoff
            assert parts[train].groupby("SessionId").Time.max().max() < cutoff
            assert parts[test].groupby("SessionId").size().min() >= 2


# --- GRU4Rec time split ---------------------------------------------------------------------------


def test_time_split_reproduces_the_published_rsc15_validation_split(any_spark):
    result = time_split(read_rsc15(any_spark, "train_full"), 1)
    rows = result.rows.toPandas()
    assert_same_rows(rows[rows.part == "train"][SESSION_COLS], pd.read_csv(rsc15_path("train_tr"), sep="\t"))
    assert_same_rows(
        rows[rows.part == "test"][SESSION_COLS], pd.read_csv(rsc15_path("train_valid"), sep="\t")
    )
    assert len(rows) == 70_278
    assert rows.reason.value_counts().to_dict() == {"test_unseen_item": 422, "test_short_session": 63}
    assert result.cutoff == pytest.approx(rows.Time.max() - DAY)


def test_gru4rec_split_of_rsc15_matches_preprocess_py_and_the_published_files(connect_spark):
    published = {
        n: pd.read_csv(rsc15_path(n), sep="\t") for n in ("train_full", "test", "train_tr", "train_valid")
    }
    data = read_rsc15(connect_spark, "train_full").union(read_rsc15(connect_spark, "test"))
    result = gru4rec_time_split(data, 1)
    parts = parts_of(result)
    expected = reference_gru4rec(pd.concat([published["train_full"], published["test"]]), 1)
    for name in ("train_full", "test", "train_tr", "valid"):
        assert_same_rows(parts[name], expected[name])
    check_gru4rec_invariants(result, 83_846, parts)
    counts = result.counts()
    assert {p: counts[p] for p in expected} == {p: len(parts[p]) for p in expected}
    assert sum(n for key, n in counts.items() if key.startswith("rejected:")) == len(parts["rejected"])
    # The raw clicks are gone, so item support is recounted on prepared data: a subset of each published part.
    for ours, theirs in [("train_full", "train_full"), ("test", "test"), ("valid", "train_valid")]:
        merged = parts[ours].merge(published[theirs].drop_duplicates(), how="left", indicator=True)
        assert (merged["_merge"] == "both").all()
    assert len(parts["test"]) == 13_505 and len(parts["train_full"]) == 69_786


def test_gru4rec_split_by_hand(connect_spark):
    h = 3600
    events = [
        (1, 1, 0), (1, 2, 10),  # train_tr
        (2, 1, 20),  # length 1
        (3, 9, 100), (3, 1, 110), (3, 2, 120),  # item 9 is rare; the rest stays in train_tr
        (4, 8, 200), (4, 1, 210),  # item 8 is rare, then the session is too short
        (5, 1, 3 * DAY - 10), (5, 2, 3 * DAY),  # test
        (6, 1, 3 * DAY - 30 * h), (6, 7, 3 * DAY - 5), (6, 7, 3 * DAY - 4),  # 7 only in test, then too short
        (7, 1, 1.5 * DAY - 10), (7, 2, 1.5 * DAY),  # valid
        (8, 1, 1.4 * DAY), (8, 6, 1.4 * DAY + 1), (8, 6, 1.4 * DAY + 2),  # 6 only in valid, then too short
    ]  # fmt: skip
    df = connect_spark.createDataFrame([(s, i, float(t)) for s, i, t in events], SESSION_SCHEMA)
    result = gru4rec_time_split(df, 1, min_item_support=2)
    rows = result.rows.toPandas()
    got = {
        (r.SessionId, r.ItemId, r.part, r.reason if isinstance(r.reason, str) else None)
        for r in rows.itertuples()
    }
    assert got == {
        (1, 1, "train_tr", None), (1, 2, "train_tr", None), (2, 1, "rejected", "short_session"),
        (3, 9, "rejected", "rare_item"), (3, 1, "train_tr", None), (3, 2, "train_tr", None),
        (4, 8, "rejected", "rare_item"), (4, 1, "rejected", "short_session_after_item_filter"),
        (5, 1, "test", None), (5, 2, "test", None),
        (6, 7, "rejected", "test_unseen_item"), (6, 1, "rejected", "test_short_session"),
        (7, 1, "valid", None), (7, 2, "valid", None),
        (8, 6, "rejected", "valid_unseen_item"), (8, 1, "rejected", "valid_short_session"),
    }  # fmt: skip
    assert len(rows) == len(events)
    assert (result.test_cutoff, result.valid_cutoff) == (2 * DAY, 0.5 * DAY)
    assert result.counts()["train_full"] == 4 + 2 + 3


session_events = st.lists(
    st.tuples(st.integers(1, 10), st.integers(1, 6), st.integers(0, 4 * 24).map(lambda hour: hour * 3600.0)),
    min_size=1,
    max_size=40,
)


def test_gru4rec_split_equals_the_pandas_reference(any_spark):
    @examples(any_spark)
    @given(events=session_events)
    def check(events):
        pdf = pd.DataFrame(events, columns=SESSION_COLS)
        result = gru4rec_time_split(any_spark.createDataFrame(pdf, SESSION_SCHEMA), 1, min_item_support=2)
        parts = parts_of(result)
        expected = reference_gru4rec(pdf, 1, min_item_support=2)
        for name in ("train_full", "test", "train_tr", "valid"):
            assert_same_rows(parts[name], expected[name])
        check_gru4rec_invariants(result, len(pdf), parts)

    check()


def test_preprocess_and_missing_columns(connect_spark):
    df = connect_spark.createDataFrame(
        [(1, 1, 0.0), (1, 2, 1.0), (2, 1, 2.0), (None, 1, 3.0)], SESSION_SCHEMA
    )
    filtered = preprocess_sessions(df, min_item_support=1)
    assert frame(filtered.kept).SessionId.tolist() == [1, 1]
    assert filtered.counts() == {
        "rejected:null_key": 1, "rejected:short_session": 1, "rejected:rare_item": 0,
        "rejected:short_session_after_item_filter": 0, "kept": 2,
    }  # fmt: skip
    with pytest.raises(ValueError, match="ItemId"):
        time_split(df.drop("ItemId"))
    with pytest.raises(ValueError, match="reason"):
        time_split(df.withColumn("reason", F.lit("x")))


# --- train_valid_test_split -----------------------------------------------------------------------


def reference_fraction_split(pdf: pd.DataFrame, valid_fraction: float, test_fraction: float):
    ends = pdf.groupby("SessionId").Time.max().reset_index().sort_values(["Time", "SessionId"])
    n = len(ends)
    n_test, n_valid = round(test_fraction * n), round(valid_fraction * n)
    order = list(ends.SessionId)
    first_valid = max(n - n_test - n_valid, 0)  # rounding can ask for more than n: valid gets what is left
    test, valid = order[n - n_test :], order[first_valid : n - n_test]
    return tuple(pdf[pdf.SessionId.isin(s)] for s in (order[:first_valid], valid, test))


def test_fraction_split_by_hand(connect_spark):
    events = [(1, 1, 10.0), (2, 1, 20.0), (3, 1, 5.0), (3, 2, 30.0), (4, 1, 30.0), (5, 1, 40.0), (5, 2, 1.0)]
    parts = train_valid_test_split(connect_spark.createDataFrame(events, SESSION_SCHEMA), 0.2, 0.2)
    got = labelled(parts, ["train", "valid", "test"])
    assert got.groupby("part").SessionId.apply(sorted).to_dict() == {
        "train": [1, 2, 3, 3],
        "valid": [4],  # ends tie at 30: the larger id counts as later
        "test": [5, 5],
    }


def test_fraction_split_equals_the_pandas_reference(connect_spark):
    fractions = st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5]), st.sampled_from([0.0, 0.1, 0.2, 0.5]))

    @examples(connect_spark)
    @given(events=session_events, fractions=fractions)
    def check(events, fractions):
        pdf = pd.DataFrame(events, columns=SESSION_COLS)
        parts = train_valid_test_split(connect_spark.createDataFrame(pdf, SESSION_SCHEMA), *fractions)
        got = labelled(parts, ["train", "valid", "test"])
        for name, expected in zip(
            ["train", "valid", "test"], reference_fraction_split(pdf, *fractions), strict=True
        ):
            assert_same_rows(got[got.part == name][SESSION_COLS], expected)

    check()


def test_fraction_split_of_rsc15(connect_spark):
    pdf = labelled(train_valid_test_split(read_rsc15(connect_spark, "train_full")), "tvs")
    assert len(pdf) == 70_278
    sessions = pdf.groupby("SessionId").agg(
        end=("Time", "max"), parts=("part", "nunique"), part=("part", "first")
    )
    assert (sessions.parts == 1).all()
    assert sessions.part.value_counts().to_dict() == {"t": 17_794 - 2 * 1_779, "v": 1_779, "s": 1_779}
    ends = sessions.groupby("part").end.agg(["min", "max"])
    assert ends.loc["t", "max"] <= ends.loc["v", "min"] and ends.loc["v", "max"] <= ends.loc["s", "min"]


# --- LensKit crossfolds ---------------------------------------------------------------------------


@pytest.fixture
def ml_small(connect_spark):
    path = shared_data("ml-latest-small/ratings.csv")
    return connect_spark.read.csv(str(path), header=True, inferSchema=True).toDF(*RATING_COLS)


def test_partition_users_on_movielens(ml_small):
    data = ml_small.toPandas()
    per_user = data.groupby("user").size()
    pairs = list(partition_users(ml_small, 5, SampleN(5), seed=7))
    tests = folds_frame(pairs)
    assert (tests.groupby("user").fold.nunique() == 1).all()
    assert tests.user.nunique() == 610 and (tests.groupby("user").size() == 5).all()
    assert sorted(tests.groupby("fold").user.nunique()) == [122] * 5
    assert_same_rows(
        pd.concat([pairs[2].train.toPandas(), tests[tests.fold == 2].drop(columns="fold")]), data
    )
    assert frame(folds_frame(partition_users(ml_small, 5, SampleN(5), seed=7))).equals(frame(tests))
    assert not frame(folds_frame(partition_users(ml_small, 5, SampleN(5), seed=8))).equals(frame(tests))

    frac = folds_frame(partition_users(ml_small, 3, SampleFrac(0.15), seed=7))
    expected = per_user.map(lambda n: round(0.15 * n))
    pd.testing.assert_series_equal(frac.groupby("user").size(), expected, check_names=False)
    assert sorted(frac.groupby("fold").user.nunique()) == [203, 203, 204]


def test_partition_rows_on_movielens(ml_small):
    tests = folds_frame(partition_rows(ml_small, 4, seed=1))
    assert len(tests) == 100_836 and sorted(tests.fold.value_counts()) == [25_209] * 4
    assert not tests.duplicated(RATING_COLS).any()
    assert frame(folds_frame(partition_rows(ml_small, 4, seed=1))).equals(frame(tests))
    assert not frame(folds_frame(partition_rows(ml_small, 4, seed=2))).equals(frame(tests))


ratings = st.lists(
    st.tuples(st.integers(1, 9), st.integers(1, 12), st.sampled_from([1.0, 3.5, 5.0]), st.integers(0, 5)),
    min_size=1,
    max_size=40,
)  # exact duplicate rows are allowed on purpose: they must be conserved too


def check_folds(pairs, pdf: pd.DataFrame, held_out) -> pd.DataFrame:
    """Each user's test rows sit in one fold and number ``held_out(|R_u|)``; fold 0's train + test = data."""
    tests = folds_frame(pairs)
    per_user = pdf.groupby("user").size()
    got = tests.groupby("user").size().reindex(per_user.index, fill_value=0)
    pd.testing.assert_series_equal(got, per_user.map(held_out), check_names=False)
    assert (tests.groupby("user").fold.nunique() == 1).all()
    assert_same_rows(pd.concat([pairs[0].train.toPandas(), tests[tests.fold == 0].drop(columns="fold")]), pdf)
    return tests


def test_partition_users_invariants(any_spark):
    @examples(any_spark)
    @given(rows=ratings, k=st.integers(1, 4), n=st.integers(1, 3), seed=st.integers(0, 3))
    def check(rows, k, n, seed):
        pdf = pd.DataFrame(rows, columns=RATING_COLS)
        pairs = list(partition_users(any_spark.createDataFrame(pdf, RATING_SCHEMA), k, SampleN(n), seed=seed))
        tests = check_folds(pairs, pdf, lambda size: min(n, size))
        sizes = tests.groupby("fold").user.nunique().reindex(range(k), fill_value=0)
        assert sorted(sizes) == sorted(len(a) for a in np.array_split(np.arange(pdf.user.nunique()), k))

    check()


def test_partition_users_sample_frac_rounds_like_python(connect_spark):
    @examples(connect_spark)
    @given(rows=ratings, frac=st.sampled_from([0.2, 0.25, 0.5, 0.75]))
    def check(rows, frac):
        pdf = pd.DataFrame(rows, columns=RATING_COLS)
        pairs = list(partition_users(connect_spark.createDataFrame(pdf, RATING_SCHEMA), 2, SampleFrac(frac)))
        check_folds(pairs, pdf, lambda size: round(frac * size))

    check()


def test_partition_rows_invariants(any_spark):
    @examples(any_spark)
    @given(rows=ratings, k=st.integers(1, 5), seed=st.integers(0, 3))
    def check(rows, k, seed):
        pdf = pd.DataFrame(rows, columns=RATING_COLS)
        pairs = list(partition_rows(any_spark.createDataFrame(pdf, RATING_SCHEMA), k, seed=seed))
        tests = folds_frame(pairs)
        assert_same_rows(tests.drop(columns="fold"), pdf)
        sizes = tests.fold.value_counts().reindex(range(k), fill_value=0)
        assert sorted(sizes) == sorted(len(a) for a in np.array_split(np.arange(len(pdf)), k))
        last = tests[tests.fold == k - 1].drop(columns="fold")
        assert_same_rows(pd.concat([pairs[-1].train.toPandas(), last]), pdf)

    check()


def test_sample_users(ml_small):
    tests = folds_frame(sample_users(ml_small, 3, 50, SampleN(2), seed=3))
    assert (tests.groupby("fold").user.nunique() == 50).all() and tests.user.nunique() == 150
    assert (tests.groupby("user").size() == 2).all()
    overlapping = folds_frame(sample_users(ml_small, 3, 400, SampleFrac(0.1), disjoint=False, seed=3))
    assert (overlapping.groupby("fold").user.nunique() == 400).all()
    fold_users = [frozenset(overlapping[overlapping.fold == i].user) for i in range(3)]
    assert len(set(fold_users)) == 3 and fold_users[0] & fold_users[1]
    per_user = ml_small.groupBy("user").count().toPandas().set_index("user")["count"]
    sizes = overlapping.groupby(["fold", "user"]).size()
    assert (sizes.values == [round(0.1 * per_user[u]) for _, u in sizes.index]).all()
    fallback = folds_frame(sample_users(ml_small, 4, 200, SampleN(1), seed=3))
    assert fallback.user.nunique() == 610 and sorted(fallback.groupby("fold").size()) == [152, 152, 153, 153]


def test_crossfold_arguments(connect_spark):
    df = connect_spark.createDataFrame([(1, 1, 1.0, 0)], RATING_SCHEMA)
    with pytest.raises(ValueError, match="partition"):
        partition_users(df, 0, SampleN(1))
    with pytest.raises(ValueError, match="'user'"):
        partition_users(df.withColumnRenamed("user", "u"), 2, SampleN(1))


# --- per-user splits ------------------------------------------------------------------------------


def reference_holdout(pdf: pd.DataFrame, min_rows: int):
    ranked = pdf.sort_values(["timestamp", "item", "rating"], ascending=False)
    rank = ranked.groupby("user").cumcount() + 1
    rank[ranked.groupby("user").user.transform("size") < min_rows] = 0
    return ranked[~rank.isin([1, 2])], ranked[rank == 2], ranked[rank == 1]


def test_temporal_holdout_by_hand(connect_spark):
    rows = [
        (1, 10, 4.0, 100),
        (1, 11, 3.0, 300),
        (1, 12, 5.0, 300),
        (1, 13, 2.0, 200),
        (2, 10, 4.0, 5),
        (2, 11, 1.0, 6),
    ]
    got = labelled(
        temporal_holdout(connect_spark.createDataFrame(rows, RATING_SCHEMA)), ["train", "valid", "test"]
    )
    assert got.groupby("part").apply(
        lambda g: sorted(zip(g.user, g.item)), include_groups=False
    ).to_dict() == {
        "test": [(1, 12)],  # tie at 300: the larger item is later
        "valid": [(1, 11)],
        "train": [(1, 10), (1, 13), (2, 10), (2, 11)],  # user 2 has fewer than 3 rows
    }


def test_temporal_holdout_equals_the_pandas_reference(connect_spark):
    @examples(connect_spark)
    @given(rows=ratings, min_rows=st.integers(1, 4))
    def check(rows, min_rows):
        pdf = pd.DataFrame(rows, columns=RATING_COLS)
        parts = temporal_holdout(connect_spark.createDataFrame(pdf, RATING_SCHEMA), min_rows=min_rows)
        got = labelled(parts, ["train", "valid", "test"])
        for name, expected in zip(["train", "valid", "test"], reference_holdout(pdf, min_rows), strict=True):
            assert_same_rows(got[got.part == name][RATING_COLS], expected)

    check()


def test_user_split_on_movielens(ml_small):
    per_user = ml_small.toPandas().groupby("user").size()
    result = user_split(ml_small, test_size=0.05, min_seq_size=20, seed=1)
    rows = result.rows.toPandas()
    assert len(rows) == per_user.sum()
    rejected = rows[rows.part == "rejected"]
    assert (
        set(rejected.user) == set(per_user[per_user <= 20].index)
        and (rejected.reason == "too_few_ratings").all()
    )
    kept = len(per_user) - rejected.user.nunique()
    test_users = set(rows[rows.part == "test"].user)
    assert len(test_users) == math.ceil(0.05 * kept)
    assert rows.groupby("user").part.nunique().max() == 1
    same = (
        user_split(ml_small, test_size=0.05, min_seq_size=20, seed=1)
        .test.select("user")
        .distinct()
        .toPandas()
    )
    other = (
        user_split(ml_small, test_size=0.05, min_seq_size=20, seed=2)
        .test.select("user")
        .distinct()
        .toPandas()
    )
    assert set(same.user) == test_users != set(other.user)


def test_user_split_by_hand(connect_spark):
    rows = [(u, i, 3.0, 0) for u in range(1, 6) for i in range(u)]  # user u has u ratings
    result = user_split(connect_spark.createDataFrame(rows, RATING_SCHEMA), test_size=0.5, min_seq_size=2)
    counts = result.counts()
    assert counts["rejected:too_few_ratings"] == 1 + 2 and counts["test"] + counts["train"] == 3 + 4 + 5
    assert sorted(set(frame(result.rejected).user)) == [1, 2]
    assert frame(result.test).user.nunique() == math.ceil(0.5 * 3)


# --- both engines ---------------------------------------------------------------------------------


def all_splits(spark, sessions: pd.DataFrame, ratings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    s = spark.createDataFrame(sessions, SESSION_SCHEMA)
    r = spark.createDataFrame(ratings, RATING_SCHEMA)
    return {
        "gru4rec": gru4rec_time_split(s, 1, min_item_support=2).rows.toPandas(),
        "fraction": labelled(train_valid_test_split(s, 0.2, 0.2), "tvs"),
        "partition_users": folds_frame(partition_users(r, 3, SampleFrac(0.3), seed=5)),
        "partition_rows": folds_frame(partition_rows(r, 3, seed=5)),
        "temporal": labelled(temporal_holdout(r), "tvs"),
        "user_split": user_split(r, test_size=0.3, min_seq_size=3, seed=5).rows.toPandas(),
    }


def test_splits_are_identical_on_classic_and_connect(spark, connect_spark, monkeypatch):
    rng = np.random.default_rng(0)
    sessions = pd.DataFrame(
        {
            "SessionId": rng.integers(0, 60, 300),
            "ItemId": rng.integers(0, 30, 300),
            "Time": rng.random(300) * 3 * DAY,
        }
    )
    ratings = pd.DataFrame(
        {
            "user": rng.integers(0, 40, 300),
            "item": rng.integers(0, 50, 300),
            "rating": rng.integers(1, 11, 300) / 2,
        }
    ).assign(timestamp=rng.integers(0, 10**9, 300))
    on_connect = all_splits(connect_spark, sessions, ratings)
    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED")
    on_classic = all_splits(spark, sessions, ratings)
    for name, expected in on_connect.items():
        assert frame(on_classic[name]).equals(frame(expected)), name
