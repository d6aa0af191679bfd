"""Named tables: batch output written straight to a table, and overwrites that never leave a moment
without the table."""

from __future__ import annotations

import re
import uuid

import pandas as pd
import pytest
from conftest import reads_during
from pyspark.sql import functions as F

from spark_recs import batch
from spark_recs.data.io import read_table, write_table
from spark_recs.models.popular import Popular

RATINGS = pd.DataFrame({"user": [1, 1, 2, 3], "item": [10, 20, 10, 30]})  # counts: 10 -> 2, 20, 30 -> 1
V1 = [(1, "a"), (2, "b"), (3, "c")]


@pytest.fixture
def schema(request, tmp_path, monkeypatch):
    """A fresh schema in the test's session, dropped afterwards; Sail keeps its tables under
    ./spark-warehouse, here in tmp_path."""
    session = request.getfixturevalue(next(f for f in request.fixturenames if f.endswith("spark")))
    monkeypatch.chdir(tmp_path)
    name = f"tables_{uuid.uuid4().hex[:8]}"
    session.sql(f"CREATE DATABASE IF NOT EXISTS {name}")
    yield name
    session.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def frame(spark, rows: list, columns: str = "id long, name string"):
    names = [field.split()[0] for field in columns.split(",")]
    return spark.createDataFrame(pd.DataFrame(rows, columns=names, dtype=object), columns)


def rows_of(df) -> list[tuple]:
    return sorted(tuple(r) for r in df.collect())


def test_recommend_and_predict_write_their_output_to_a_table(any_spark, schema, one_torch_thread):
    model = Popular().fit(RATINGS)
    users = any_spark.createDataFrame(pd.DataFrame({"user": [1, 2, 4]}))

    got = batch.recommend(model, users, 2, output=f"{schema}.top2")

    # Unrated items by count, ties to the lower id: 1 rated 10 and 20, 2 rated 10, 4 is unknown.
    expected = [(1, 1, 30), (2, 1, 20), (2, 2, 30), (4, 1, 10), (4, 2, 20)]
    assert rows_of(got.select("user", "rank", "item")) == expected
    assert rows_of(read_table(any_spark, f"{schema}.top2").select("user", "rank", "item")) == expected

    pairs = any_spark.createDataFrame(pd.DataFrame({"user": [1, 2], "item": [10, 30]}))
    predicted = batch.predict(model, pairs, output=f"{schema}.scores")
    assert rows_of(predicted) == [(1, 10, 2.0), (2, 30, 1.0)]
    assert rows_of(any_spark.table(f"{schema}.scores")) == [(1, 10, 2.0), (2, 30, 1.0)]


def test_a_parquet_table_is_never_missing_while_it_is_overwritten(spark, schema):
    name = f"{schema}.events"
    sizes = [10, 1, 2, 3, 4, 5]  # row counts tell the versions apart
    write_table(spark.range(sizes[0]).select("id", F.lit("v").alias("name")), name)

    def writes():
        for size in sizes[1:]:
            assert write_table(spark.range(size).select("id", F.lit("v").alias("name")), name) == "parquet"

    seen, errors = reads_during(lambda: spark.table(name).count(), writes)
    assert not errors, errors[0]
    assert seen and set(seen) <= set(sizes)
    assert spark.table(name).count() == sizes[-1]
    location = next(
        r.data_type
        for r in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
        if r.col_name == "Location"
    )
    assert re.fullmatch(r"\.v\d{20}-[0-9a-f]{8}\.events", location.rsplit("/", 1)[1])  # moved, not renamed
    assert [t.name for t in spark.catalog.listTables(schema)] == ["events"]


def test_a_parquet_table_overwritten_with_other_columns(spark, schema):
    name = f"{schema}.events"
    write_table(frame(spark, V1), name)

    write_table(frame(spark, [("x", 1.5)], "key string, score double"), name)

    assert spark.table(name).columns == ["key", "score"]
    assert rows_of(spark.table(name)) == [("x", 1.5)]
    assert [t.name for t in spark.catalog.listTables(schema)] == ["events"]


def test_a_dropped_table_can_be_written_again(spark, schema):
    """Overwrites leave no folder at the table's own location, which would block creating it again."""
    name = f"{schema}.events"
    for rows in (V1, V1[:2], V1[:1]):
        write_table(frame(spark, rows), name)
    spark.sql(f"DROP TABLE {name}")

    write_table(frame(spark, [(9, "z")]), name)
    assert rows_of(spark.table(name)) == [(9, "z")]


def test_a_parquet_table_on_sail_is_replaced_in_one_step(connect_spark, schema):
    name = f"{schema}.events"
    write_table(frame(connect_spark, V1), name, format="parquet")

    write_table(frame(connect_spark, V1[:1]), name, format="parquet")
    assert rows_of(connect_spark.table(name)) == V1[:1]
    failing = connect_spark.range(10).select(
        F.when(F.col("id") == 7, F.raise_error(F.lit("boom at 7"))).otherwise(F.col("id")).alias("id"),
        F.lit("new").alias("name"),
    )
    with pytest.raises(Exception, match="boom at 7"):
        write_table(failing, name, format="parquet")
    assert rows_of(connect_spark.table(name)) == V1[:1]
