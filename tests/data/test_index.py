"""IdIndex: raw ids to a dense, deterministic 0..n-1 numbering computed in Spark, on both engines."""

from __future__ import annotations

import contextlib
import io
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from spark_recs.data.index import IdIndex, UnknownIdError

LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def frame(spark, rows: list, schema: str):
    """A DataFrame from rows through pandas and Arrow (on classic Spark a Python list runs Python workers: slow)."""
    names = [field.split()[0] for field in schema.split(",")]
    return spark.createDataFrame(pd.DataFrame(rows, columns=names, dtype=object), schema)


def examples(spark) -> settings:
    """Few examples: every one is several Spark jobs; classic local Spark costs about a second a job."""
    return settings(max_examples=15 if "connect" in type(spark).__module__ else 8, deadline=None)


def mapping_of(index: IdIndex) -> dict:
    rows = index.mapping.collect()
    mapping = {r["id"]: r["index"] for r in rows}
    assert len(mapping) == len(rows), "an id appears twice in the mapping"
    return mapping


def assert_bijection(index: IdIndex, ids: set) -> None:
    mapping = mapping_of(index)
    assert set(mapping) == ids
    assert sorted(mapping.values()) == list(range(len(ids)))
    assert index.size == len(ids)


def test_int_ids_map_onto_0_to_n_minus_1(any_spark):
    @examples(any_spark)
    @given(ids=st.lists(LONGS, max_size=40), buckets=st.integers(1, 8))
    def check(ids, buckets):
        # Each id appears 1-3 times, plus a null: fit indexes the distinct non-null ids.
        rows = [(i,) for k, i in enumerate(ids) for _ in range(1 + k % 3)] + [(None,)]
        assert_bijection(IdIndex.fit(frame(any_spark, rows, "user long"), "user", buckets=buckets), set(ids))

    check()


def test_string_ids_map_onto_0_to_n_minus_1(any_spark):
    @examples(any_spark)
    @given(ids=st.sets(st.text(max_size=12), min_size=1, max_size=40), buckets=st.integers(1, 8))
    def check(ids, buckets):
        df = frame(any_spark, [(i,) for i in sorted(ids)], "item string")
        assert_bijection(IdIndex.fit(df, "item", buckets=buckets), ids)

    check()


def test_empty_input_gives_empty_index(any_spark):
    index = IdIndex.fit(frame(any_spark, [(None,)], "user long"), "user")

    assert index.size == 0
    assert index.mapping.count() == 0


def test_deterministic_across_fits_order_and_partitioning(any_spark):
    ids = [f"item-{i * 7919 % 1000}" for i in range(300)]
    df = frame(any_spark, [(i,) for i in ids], "item string")
    first = mapping_of(IdIndex.fit(df, "item", buckets=8))

    shuffled = df.orderBy(F.rand(seed=3)).repartition(5)
    doubled = df.unionByName(df).repartition(3, "item")
    assert mapping_of(IdIndex.fit(df, "item", buckets=8)) == first
    assert mapping_of(IdIndex.fit(shuffled, "item", buckets=8)) == first
    assert mapping_of(IdIndex.fit(doubled, "item", buckets=8)) == first
    assert len(first) == len(set(ids))


def test_same_mapping_on_classic_and_connect(spark, connect_spark, monkeypatch):
    ids = [(i * 104729 % 5000,) for i in range(400)] + [(f"s{i}",) for i in range(50)]
    rows = [(str(i),) for (i,) in ids]

    on_connect = mapping_of(IdIndex.fit(frame(connect_spark, rows, "id string"), "id"))
    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED")
    on_classic = mapping_of(IdIndex.fit(frame(spark, rows, "id string"), "id"))

    assert on_classic == on_connect
    assert len(on_classic) == 450


def test_fit_has_no_single_partition_window(spark):
    df = spark.range(1000).select((F.col("id") % 97).alias("user"))
    plan = io.StringIO()
    with contextlib.redirect_stdout(plan):
        IdIndex.fit(df, "user").mapping.explain(mode="formatted")
    text = plan.getvalue()

    assert "Window" in text
    assert "hashpartitioning(_bucket" in text
    assert "SinglePartition" not in text


def test_inverse_transform_restores_ids(any_spark):
    events = frame(
        any_spark,
        [("u3", "a", 1.0), ("u1", "b", 2.0), ("u3", "c", 3.0), ("u2", "a", 4.0)],
        "user string, item string, t double",
    )
    index = IdIndex.fit(events, "user")

    indexed = index.transform(events)
    assert indexed.columns == ["user", "item", "t"]
    assert dict(indexed.dtypes)["user"] == "bigint"
    assert sorted({r["user"] for r in indexed.collect()}) == [0, 1, 2]
    restored = index.inverse_transform(indexed)
    assert sorted(map(tuple, restored.collect())) == sorted(map(tuple, events.collect()))


def test_transform_to_another_column_with_another_name(any_spark):
    index = IdIndex.fit(frame(any_spark, [(10,), (20,), (30,)], "item long"), "item")
    mapping = mapping_of(index)
    other = frame(any_spark, [(20, "x"), (30, "y"), (20, "z")], "prev_item long, tag string")

    out = index.transform(other, "prev_item", out="prev_index")
    assert out.columns == ["prev_item", "tag", "prev_index"]
    assert sorted(map(tuple, out.collect())) == [
        (20, "x", mapping[20]),
        (20, "z", mapping[20]),
        (30, "y", mapping[30]),
    ]


@pytest.fixture
def fitted(any_spark):
    train = frame(any_spark, [(1,), (2,), (3,), (2,)], "item long")
    test = frame(any_spark, [(1, "a"), (4, "b"), (2, "c"), (4, "d"), (5, "e")], "item long, tag string")
    return train, test


def test_unknown_error_reports_the_count(fitted):
    train, test = fitted
    index = IdIndex.fit(train, "item")

    with pytest.raises(UnknownIdError, match=r"^3 row\(s\) have item values not in the item index"):
        index.transform(test).collect()
    # The examples: the five smallest distinct unknown ids, the same on every run and engine.
    unknown = frame(test.sparkSession, [(i,) for i in (9, 4, 1, 7, 4, 5, 8, 6)], "item long")
    with pytest.raises(UnknownIdError, match=r"^7 row\(s\) .* \(e\.g\. \[4, 5, 6, 7, 8\]\);"):
        index.transform(unknown)


def test_unknown_drop_removes_and_counts(fitted):
    train, test = fitted
    index = IdIndex.fit(train, "item", unknown="drop")
    mapping = mapping_of(index)

    out = index.transform(test)
    assert index.dropped == 3
    assert sorted(map(tuple, out.collect())) == sorted([(mapping[1], "a"), (mapping[2], "c")])


def test_unknown_reserve_maps_to_size(fitted):
    train, test = fitted
    index = IdIndex.fit(train, "item", unknown="reserve")
    mapping = mapping_of(index)

    out = index.transform(test)
    assert index.size == 3
    assert sorted(map(tuple, out.collect()), key=lambda r: r[1]) == [
        (mapping[1], "a"),
        (3, "b"),
        (mapping[2], "c"),
        (3, "d"),
        (3, "e"),
    ]
    back = {r["tag"]: r["item"] for r in index.inverse_transform(out).collect()}
    assert back == {"a": 1, "b": None, "c": 2, "d": None, "e": None}


def test_unknown_option_is_checked(spark, tmp_path):
    index = IdIndex.fit(frame(spark, [(1,)], "item long"), "item")
    with pytest.raises(ValueError, match="unknown must be one of"):
        IdIndex.fit(frame(spark, [(1,)], "item long"), "item", unknown="ignore")
    index.save(str(tmp_path / "index"))
    with pytest.raises(ValueError, match="unknown must be one of"):
        IdIndex.load(spark, str(tmp_path / "index"), unknown="skip")


def test_save_load_round_trip(any_spark, tmp_path):
    index = IdIndex.fit(frame(any_spark, [(f"i{k}",) for k in range(20)], "item string"), "item")
    target = str(tmp_path / "item_index")

    index.save(target)
    loaded = IdIndex.load(any_spark, target, name="item", unknown="reserve")
    assert loaded.size == 20
    assert mapping_of(loaded) == mapping_of(index)
    out = loaded.transform(frame(any_spark, [("i3",), ("new",)], "item string"))
    assert sorted(r["item"] for r in out.collect()) == sorted([mapping_of(index)["i3"], 20])


def test_save_load_named_table(spark):
    spark.sql("CREATE DATABASE IF NOT EXISTS index_test")
    index = IdIndex.fit(spark.range(30).select((F.col("id") * 3).alias("user")), "user")

    index.save("index_test.user_index")
    assert mapping_of(IdIndex.load(spark, "index_test.user_index")) == mapping_of(index)


def test_int_and_bigint_ids_get_the_same_mapping(spark):
    ids = list(range(100, 140))
    narrow = IdIndex.fit(frame(spark, [(i,) for i in ids], "id int"), "id")
    wide = IdIndex.fit(frame(spark, [(i,) for i in ids], "id bigint"), "id")
    assert mapping_of(narrow) == mapping_of(wide)


@pytest.mark.parametrize("unknown", ["error", "drop", "reserve"])
def test_fit_transform_gives_what_fit_then_transform_give(any_spark, unknown):
    rows = [(3, "a"), (1, "b"), (3, "c"), (7, "d"), (None, "e")]
    events = frame(any_spark, rows, "item long, tag string")
    for df in (events.where(F.col("item").isNotNull()), events):  # without and with a null id
        expected_index = IdIndex.fit(df, "item", unknown=unknown)
        try:
            expected = sorted(map(tuple, expected_index.transform(df, out="index").collect()), key=str)
        except UnknownIdError as error:
            with pytest.raises(UnknownIdError, match=re.escape(str(error))):
                IdIndex.fit_transform(df, "item", "index", unknown=unknown)[1].collect()
            continue
        index, out = IdIndex.fit_transform(df, "item", "index", unknown=unknown)
        assert mapping_of(index) == mapping_of(expected_index) and index.size == 3
        assert sorted(map(tuple, out.collect()), key=str) == expected
        assert index.dropped == expected_index.dropped


def test_fit_transform_leaves_out_the_pass_counting_unknown_ids(spark):
    """Fitted on the frame it transforms, the index knows every non-null id: no join is counted."""
    events = frame(spark, [(i % 50, i) for i in range(2_000)], "item long, n long").cache()
    events.count()

    def jobs(group: str, run) -> int:
        spark.sparkContext.setJobGroup(group, group)
        try:
            run()
        finally:
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        return len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))

    separate = jobs("fit-then-transform", lambda: IdIndex.fit(events, "item").transform(events))
    together = jobs("fit-transform", lambda: IdIndex.fit_transform(events, "item"))
    assert together < separate, (together, separate)
