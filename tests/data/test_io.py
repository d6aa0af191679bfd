"""Table IO: validated names, Delta/Parquet paths, CSV/TSV sniffing, and atomic overwrites on both engines."""

from __future__ import annotations

import gzip
import re

import pandas as pd
import pytest
from conftest import shared_data
from pyspark.sql import functions as F

from spark_recs.data.io import (
    collect_columns,
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
        ("`my-catalog`.recs.`events-2024`", "`my-catalog`.`recs`.`events-2024`"),
        ("`café`.c", "`café`.`c`"),
    ],
)
def test_valid_names_are_quoted(name, quoted):
    assert is_table_name(name)
    assert quote_table_name(name) == quoted


@pytest.mark.parametrize(
    "name",
    ["a.b.c.d", "recs.my-table", "recs.events; DROP TABLE x", "two words", "a..b", ".a", "a.", "`a`b", ""]
    # What Unity Catalog forbids even in backticks (period, space, slash, control characters), and ';'.
    + ["`a.b`.c", "recs.`odd name`", "recs.`x;DROP TABLE y`", "`a/b`", "recs.`tab\tx`", "recs.`bell\x07`"],
)
def test_invalid_names_are_rejected(name):
    assert not is_table_name(name)
    with pytest.raises(ValueError, match=r"invalid table name .*catalog\.schema\.table") as raised:
        quote_table_name(name)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["recs.`odd name`", "recs.`x;DROP TABLE y`", "two words"])
def test_a_bad_name_is_a_one_line_error_when_reading_or_writing(any_spark, name):
    """Neither a table name nor an existing path: a ValueError naming it, never a Spark parse trace."""
    with pytest.raises(ValueError, match=f"invalid table name {re.escape(repr(name))}.*needs a '/'"):
        read_table(any_spark, name)
    with pytest.raises(ValueError, match=f"invalid table name {re.escape(repr(name))}"):
        write_table(frame(any_spark, V1), name)


def test_an_existing_path_with_a_space_is_read_as_a_path(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two words").write_text("id,name\n1,a\n")

    assert rows_of(read_table(spark, "two words")) == [("1", "a")]


@pytest.mark.parametrize(
    "path",
    ["data/events", "/tmp/events", "events.csv", "events.parquet", "c:\\x", "clicks.tsv.gz", "r.csv.gz"],
)
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
        # The suffix's separator is not in the header: sniffed (DIGINETICA's .csv is ';'-separated).
        ("a.csv", "SessionId;ItemId;Time\n1;10;1.5\n2;20;2.5\n", None),
        ("a.tsv", "SessionId,ItemId,Time\n1,10,1.5\n2,20,2.5\n", None),
        # gzip'd: format and separator come from the decompressed first line.
        ("clicks.tsv.gz", "SessionId\tItemId\tTime\n1\t10\t1.5\n2\t20\t2.5\n", None),
        ("ratings.csv.gz", "SessionId,ItemId,Time\n1,10,1.5\n2,20,2.5\n", None),
        ("views.csv.gz", "SessionId;ItemId;Time\n1;10;1.5\n2;20;2.5\n", None),
    ],
)
def test_text_files_with_separator_detection(any_spark, tmp_path, file, text, sep):
    path = tmp_path / file
    path.write_bytes(gzip.compress(text.encode()) if file.endswith(".gz") else text.encode())

    df = read_table(any_spark, str(path), sep=sep)

    assert df.columns == ["SessionId", "ItemId", "Time"]
    assert set(dict(df.dtypes).values()) == {"string"}
    assert rows_of(df) == [("1", "10", "1.5"), ("2", "20", "2.5")]


def test_an_explicit_separator_wins_over_sniffing(any_spark, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a;b,c\n1;2,3\n")

    assert read_table(any_spark, str(path), sep=";").columns == ["a", "b,c"]
    assert read_table(any_spark, str(path), sep=",").columns == ["a;b", "c"]
    assert read_table(any_spark, str(path)).columns == ["a;b", "c"]  # ',' is in the header: the suffix's


def test_diginetica_views_are_read_with_semicolons(any_spark):
    path = shared_data("sessions/diginetica_sample/sample_train-item-views.csv")
    expected = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)

    df = read_table(any_spark, str(path))

    assert df.columns == ["session_id", "user_id", "item_id", "timeframe", "eventdate"]
    assert df.count() == len(expected)
    assert sorted(df.select("item_id").distinct().toPandas()["item_id"]) == sorted(set(expected["item_id"]))


def test_quoted_newlines_stay_inside_their_field(any_spark, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('id,text\n1,"two\nlines"\n2,plain\n3,"three\nshort\nlines"\n')

    assert rows_of(read_table(any_spark, str(path))) == [
        ("1", "two\nlines"),
        ("2", "plain"),
        ("3", "three\nshort\nlines"),
    ]


@pytest.mark.parametrize("name", ["empty.csv", "empty.tsv", "empty.txt", "empty.csv.gz"])
def test_an_empty_text_file_is_a_one_line_error(any_spark, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"")

    with pytest.raises(ValueError, match=f"^{re.escape(str(path))} is empty: a text table needs a header"):
        read_table(any_spark, str(path))


def test_a_header_only_file_gives_its_columns_and_no_rows(any_spark, tmp_path):
    path = tmp_path / "header.tsv"
    path.write_text("SessionId\tItemId\n")

    df = read_table(any_spark, str(path))
    assert df.columns == ["SessionId", "ItemId"]
    assert df.count() == 0


def test_a_folder_of_text_files_is_read_as_text(any_spark, tmp_path):
    folder = tmp_path / "clicks"
    folder.mkdir()
    (folder / "part-1.tsv.gz").write_bytes(gzip.compress(b"SessionId\tItemId\n1\t10\n"))
    (folder / "part-2.tsv.gz").write_bytes(gzip.compress(b"SessionId\tItemId\n2\t20\n3\t30\n"))
    (folder / "_SUCCESS").write_text("")  # markers and checksums are not data
    (folder / ".part-1.tsv.crc").write_bytes(b"crc")

    df = read_table(any_spark, str(folder))
    assert df.columns == ["SessionId", "ItemId"]
    assert rows_of(df) == [("1", "10"), ("2", "20"), ("3", "30")]


def test_a_folder_that_is_no_table_is_a_one_line_error(spark):
    folder = shared_data("ml-100k")
    files = sorted(p.name for p in folder.iterdir())

    with pytest.raises(ValueError) as raised:
        read_table(spark, str(folder))
    assert str(raised.value).startswith(
        f"{folder} holds {len(files)} files: {', '.join(files[:5])}, ... (no Parquet or Delta files); "
        "expected a Delta table, Parquet files, or text files of one kind"
    )
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "files, found",
    [
        ({"a.csv": "x\n1\n", "b.tsv": "x\n2\n"}, "holds 2 files: a.csv, b.tsv (no Parquet or Delta files)"),
        ({"a.csv": "x\n1\n", "b.csv.gz": "x\n2\n"}, "holds 2 files: a.csv, b.csv.gz (no Parquet or Delta"),
        ({"notes.md": "hi"}, "holds 1 file: notes.md (no Parquet or Delta files)"),
        ({}, "is empty: no data files in it"),
    ],
)
def test_folders_of_mixed_or_no_files_are_refused(any_spark, tmp_path, files, found):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "_SUCCESS").write_text("")
    for name, text in files.items():
        (folder / name).write_text(text)

    with pytest.raises(ValueError, match=f"^{re.escape(str(folder))} {re.escape(found)}"):
        read_table(any_spark, str(folder))


def test_parquet_mixed_with_other_files_is_refused(any_spark, tmp_path):
    folder = tmp_path / "pq"
    frame(any_spark, V1).write.parquet(str(folder))
    (folder / "notes.txt").write_text("not data")

    with pytest.raises(
        ValueError, match=r"holds \d+ files: .*notes\.txt.*\(Parquet mixed with other files\)"
    ):
        read_table(any_spark, str(folder))


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
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["events"]
    assert not [p.name for p in tmp_path.iterdir() if ".writing-" in p.name]  # no staging folder left behind


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


def test_collect_columns_gives_what_to_pandas_gives(any_spark):
    df = any_spark.createDataFrame(
        [(3, "b", 1.5, None), (1, None, None, 7), (2, "a", -0.0, 8)], "s long, i string, t double, extra long"
    ).orderBy("s")
    got = collect_columns(df, ["s", "i", "t"])
    pd.testing.assert_frame_equal(got, df.select("s", "i", "t").toPandas())
    assert list(got["s"]) == [1, 2, 3] and got["i"].isna().tolist() == [True, False, False]
    empty = collect_columns(df.where(F.col("s") > 9), ["s", "t"])
    assert list(empty.columns) == ["s", "t"] and len(empty) == 0
