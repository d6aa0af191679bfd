"""Table IO: validated names, Delta/Parquet paths, CSV/TSV sniffing, and atomic overwrites on both engines."""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import functions as F

from spark_recs.data.io import (
    is_table_name,
    load_databricks_table,
    quote_table_name,
    read_databricks_table,
    read_table,
    write_table,
)
from spark_recs.runtime import storage_format

V1 = [(1, "a"), (2, "b"), (3, "c")]


def frame(spark, rows: list, schema: str = "id long, name string"):
    """A DataFrame from rows through pandas and Arrow (on classic Spark a Python list runs Python workers: slow)."""
    names = [field.split()[0] for field in schema.split(",")]
    return spark.createDataFrame(pd.DataFrame(rows, columns=names, dtype=object), schema)


def rows_of(df) -> list[tuple]:
    return sorted(tuple(r) for r in df.collect())


def failing(spark):
    """Ten rows whose evaluation raises at row 7: the write starts, then fails part-way."""
    ids = spark.range(10).select(F.col("id"), F.lit("new").alias("name"))
    return ids.select(
        F.when(F.col("id") == 7, F.raise_error(F.lit("boom at 7"))).otherwise(F.col("id")).alias("id"), "name"
    )


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, quoted",
    [
        ("events", "`events`"),
        ("recs.events", "`recs`.`events`"),
        ("main.recs.events_v2", "`main`.`recs`.`events_v2`"),
        ("`my-catalog`.recs.`odd name`", "`my-catalog`.`recs`.`odd name`"),
        ("`a.b`.c", "`a.b`.`c`"),
    ],
)
def test_valid_names_are_quoted(name, quoted):
    assert is_table_name(name)
    assert quote_table_name(name) == quoted


@pytest.mark.parametrize(
    "name",
    ["a.b.c.d", "recs.my-table", "recs.events; DROP TABLE x", "two words", "a..b", ".a", "a.", "`a`b", ""],
)
def test_invalid_names_are_rejected(name):
    assert not is_table_name(name)
    with pytest.raises(ValueError, match=r"invalid table name .*catalog\.schema\.table"):
        quote_table_name(name)


@pytest.mark.parametrize("path", ["data/events", "/tmp/events", "events.csv", "events.parquet", "c:\\x"])
def test_paths_are_not_table_names(path):
    assert not is_table_name(path)


# --- path formats ----------------------------------------------------------------------------------


def test_storage_format_per_engine(spark, connect_spark, monkeypatch):
    monkeypatch.delenv("SPARK_RECS_STORAGE_FORMAT", raising=False)
    assert storage_format(connect_spark) == "delta"  # pysail writes Delta
    assert storage_format(spark) == "parquet"  # classic local Spark without Delta jars


def test_path_round_trip_in_the_storage_format(any_spark, tmp_path):
    target = str(tmp_path / "events")

    fmt = write_table(frame(any_spark, V1), target)

    assert fmt == storage_format(any_spark)
    assert (tmp_path / "events" / "_delta_log").is_dir() == (fmt == "delta")
    back = read_table(any_spark, target)
    assert back.columns == ["id", "name"]
    assert rows_of(back) == V1


def test_overwrite_replaces_and_append_adds(any_spark, tmp_path):
    target = str(tmp_path / "events")
    write_table(frame(any_spark, V1), target)

    write_table(frame(any_spark, [(9, "z")]), target)
    assert rows_of(read_table(any_spark, target)) == [(9, "z")]
    write_table(frame(any_spark, [(10, "y")]), target, mode="append")
    assert rows_of(read_table(any_spark, target)) == [(9, "z"), (10, "y")]


def test_delta_directory_read_as_delta_not_parquet(connect_spark, tmp_path):
    # After an overwrite the old version's Parquet files are still in the folder: read as plain
    # Parquet the table would show both versions.
    target = str(tmp_path / "events")
    write_table(frame(connect_spark, V1), target, format="delta")
    write_table(frame(connect_spark, [(4, "d")]), target, format="delta")

    assert len(list((tmp_path / "events").glob("*.parquet"))) >= 2
    assert rows_of(read_table(connect_spark, target)) == [(4, "d")]


def test_parquet_directory_and_file_detected(any_spark, tmp_path):
    folder = tmp_path / "pq"
    frame(any_spark, V1).write.parquet(str(folder))
    single = tmp_path / "one.parquet"
    pd.DataFrame({"id": [5, 6], "name": ["e", "f"]}).to_parquet(single)

    assert rows_of(read_table(any_spark, str(folder))) == V1
    assert rows_of(read_table(any_spark, str(single))) == [(5, "e"), (6, "f")]


@pytest.mark.parametrize(
    "file, text, sep",
    [
        ("a.csv", "SessionId,ItemId,Time\n1,10,1.5\n2,20,2.5\n", None),
        ("a.tsv", "SessionId\tItemId\tTime\n1\t10\t1.5\n2\t20\t2.5\n", None),
        ("a.txt", "SessionId\tItemId\tTime\n1\t10\t1.5\n2\t20\t2.5\n", None),
        ("a.txt", "SessionId;ItemId;Time\n1;10;1.5\n2;20;2.5\n", None),
        ("a.dat", "SessionId|ItemId|Time\n1|10|1.5\n2|20|2.5\n", None),
        ("noext", "SessionId,ItemId,Time\n1,10,1.5\n2,20,2.5\n", None),
        ("a.csv", "SessionId;ItemId;Time\n1;10;1.5\n2;20;2.5\n", ";"),
    ],
)
def test_text_files_with_separator_detection(any_spark, tmp_path, file, text, sep):
    path = tmp_path / file
    path.write_text(text)

    df = read_table(any_spark, str(path), sep=sep)

    assert df.columns == ["SessionId", "ItemId", "Time"]
    assert set(dict(df.dtypes).values()) == {"string"}
    assert rows_of(df) == [("1", "10", "1.5"), ("2", "20", "2.5")]


def test_csv_quoting_follows_rfc_4180(any_spark, tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text('movieId,title\n1,"American President, The (1995)"\n2,"He said ""hi"" (2002)"\n3,a\\b\n')

    assert rows_of(read_table(any_spark, str(path))) == [
        ("1", "American President, The (1995)"),
        ("2", 'He said "hi" (2002)'),
        ("3", "a\\b"),
    ]


def test_text_file_without_header(spark, tmp_path):
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\n186\t302\t3\n")

    df = read_table(spark, str(path), sep="\t", header=False)
    assert rows_of(df) == [("186", "302", "3"), ("196", "242", "3")]


def test_missing_path_is_a_clear_error(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="no table or file at"):
        read_table(spark, str(tmp_path / "nothing" / "here"))


# --- atomic overwrite --------------------------------------------------------------------------------


def test_failed_overwrite_of_a_path_keeps_the_previous_version(any_spark, tmp_path):
    target = str(tmp_path / "events")
    write_table(frame(any_spark, V1), target)

    with pytest.raises(Exception, match="boom at 7"):
        write_table(failing(any_spark), target)

    assert rows_of(read_table(any_spark, target)) == V1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]  # no staging folder left behind


def test_overwrite_a_path_from_itself(spark, tmp_path):
    # Parquet is swapped in by rename, so a job may rewrite the table it reads.
    target = str(tmp_path / "events")
    write_table(frame(spark, V1), target)

    write_table(read_table(spark, target).where("id > 1"), target)
    assert rows_of(read_table(spark, target)) == V1[1:]


@pytest.fixture
def database(spark):
    spark.sql("CREATE DATABASE IF NOT EXISTS io_test")
    yield "io_test"
    spark.sql("DROP DATABASE IF EXISTS io_test CASCADE")


def test_named_table_round_trip_and_failed_overwrite(spark, database):
    name = f"spark_catalog.{database}.events"
    assert write_table(frame(spark, V1), name) == "parquet"
    assert rows_of(read_table(spark, name)) == V1

    with pytest.raises(Exception, match="boom at 7"):
        write_table(failing(spark), name)
    assert rows_of(read_table(spark, f"{database}.events")) == V1

    write_table(read_table(spark, name).where("id < 3"), name)
    assert rows_of(read_table(spark, name)) == V1[:2]
    assert [t.name for t in spark.catalog.listTables(database)] == ["events"]  # no staging tables left


def test_load_databricks_table_returns_pandas(spark, database):
    write_table(frame(spark, V1), f"{database}.ratings")

    pdf = load_databricks_table(f"{database}.ratings", spark)
    assert isinstance(pdf, pd.DataFrame)
    assert list(pdf.columns) == ["id", "name"]
    assert sorted(pdf.itertuples(index=False, name=None)) == V1
    df = read_databricks_table(f"{database}.ratings", spark)
    assert rows_of(df) == V1


def test_load_databricks_table_rejects_bad_names(spark):
    with pytest.raises(ValueError, match="invalid table name"):
        load_databricks_table("recs.events; DROP TABLE x", spark)
