"""Overwrites of Parquet paths that lose nothing: a link to the current version, crash recovery, and
readers that never see a half-written table while another writer overwrites it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import reads_during
from pyspark.sql import functions as F

from spark_recs.data.io import read_table, write_table

V1 = [(1, "a"), (2, "b"), (3, "c")]


def write(df, target, **kw) -> str:
    """Plain Parquet on both engines (Sail would write Delta, which has its own overwrite)."""
    return write_table(df, str(target), format="parquet", **kw)


def frame(spark, rows: list):
    return spark.createDataFrame(
        pd.DataFrame(rows, columns=["id", "name"], dtype=object), "id long, name string"
    )


def rows_of(df) -> list[tuple]:
    return sorted(tuple(r) for r in df.collect())


def hidden(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_overwritten_path_is_a_link_to_its_current_version(any_spark, tmp_path):
    target = tmp_path / "events"
    for rows in (V1, V1[:2], V1[:1]):
        write(frame(any_spark, rows), target)

    assert target.is_symlink() and re.fullmatch(r"\.v\d{20}-[0-9a-f]{8}\.events", os.readlink(target))
    assert rows_of(read_table(any_spark, str(target))) == [(1, "a")]
    assert len(hidden(tmp_path)) == 3  # replaced minutes ago at most: kept for reads still running
    # Users reading the folder themselves still get the current version.
    assert sorted(pd.read_parquet(target).itertuples(index=False, name=None)) == [(1, "a")]
    assert rows_of(any_spark.read.parquet(str(target))) == [(1, "a")]


def test_versions_replaced_long_ago_are_deleted(spark, tmp_path):
    ancient, old = (f".v{stamp:020d}-0123abcd.events" for stamp in (1, 2))  # written in 1970
    frame(spark, V1).write.parquet(str(tmp_path / ancient))
    frame(spark, V1[:2]).write.parquet(str(tmp_path / old))
    os.symlink(old, tmp_path / "events")

    write(frame(spark, [(9, "z")]), tmp_path / "events")

    # ``old`` was replaced just now and is the previous version: kept; ``ancient`` was replaced in 1970.
    assert hidden(tmp_path) == [old, os.readlink(tmp_path / "events")]
    assert rows_of(read_table(spark, str(tmp_path / "events"))) == [(9, "z")]


def test_a_folder_of_the_earlier_layout_is_replaced_by_a_link(spark, tmp_path):
    target = tmp_path / "events"
    frame(spark, V1).write.parquet(str(target))  # a real folder, as written before links

    write(frame(spark, [(9, "z")]), target)

    assert target.is_symlink()
    assert rows_of(read_table(spark, str(target))) == [(9, "z")]
    assert hidden(tmp_path) == [os.readlink(target)]


def test_a_stranded_old_folder_is_restored_by_the_next_read_and_write(spark, tmp_path):
    """What a crash between the earlier layout's two renames left: no table, the old data in ``.old-*``
    beside a complete staging folder."""
    frame(spark, V1).write.parquet(str(tmp_path / ".events.old-0123abcd"))
    frame(spark, [(7, "new")]).write.parquet(str(tmp_path / ".events.writing-89abcdef"))
    target = tmp_path / "events"

    assert rows_of(read_table(spark, str(target))) == V1
    assert target.is_dir()

    write(frame(spark, [(8, "x")]), target)
    assert rows_of(read_table(spark, str(target))) == [(8, "x")]
    assert not [name for name in hidden(tmp_path) if ".old-" in name or ".writing-" in name]


def test_a_write_killed_before_its_link_loses_nothing(any_spark, tmp_path):
    """A crash while replacing a folder of the earlier layout, after moving it aside and before linking
    the complete new version: the next read finds the old table."""
    frame(any_spark, V1).write.parquet(str(tmp_path / ".events.old-0123abcd"))
    frame(any_spark, [(9, "z")]).write.parquet(str(tmp_path / f".v{2:020d}-89abcdef.events"))
    target = tmp_path / "events"

    assert rows_of(read_table(any_spark, str(target))) == V1

    write(frame(any_spark, [(5, "e")]), target)
    assert rows_of(read_table(any_spark, str(target))) == [(5, "e")]


def test_staging_of_killed_writes_is_deleted_by_the_next_write(any_spark, tmp_path):
    target = tmp_path / "events"
    write(frame(any_spark, V1), target)
    killed = tmp_path / f".events.writing-{dead_pid()}-0123abcd"
    frame(any_spark, [(5, "half")]).write.parquet(str(killed))
    running = tmp_path / f".events.writing-{os.getpid()}-89abcdef"  # a writer still at work: left alone
    running.mkdir()

    write(frame(any_spark, [(6, "f")]), target)

    assert not killed.exists()
    assert running.exists()
    assert rows_of(read_table(any_spark, str(target))) == [(6, "f")]


def test_readers_see_one_complete_version_while_a_writer_overwrites(any_spark, tmp_path):
    target = str(tmp_path / "events")
    sizes = [10, 1, 2, 3, 4, 5, 6]  # row counts tell the versions apart
    write(any_spark.range(sizes[0]).select("id", F.lit("v").alias("name")), target)

    def writes():
        for size in sizes[1:]:
            write(any_spark.range(size).select("id", F.lit("v").alias("name")), target)

    seen, errors = reads_during(lambda: read_table(any_spark, target).count(), writes)
    assert not errors, errors[0]
    assert seen and set(seen) <= set(sizes)
    assert read_table(any_spark, str(target)).count() == sizes[-1]


def test_an_empty_result_keeps_its_columns(any_spark, tmp_path):
    """Sail writes no file for an empty result: the version still holds the columns, as on classic Spark."""
    target = str(tmp_path / "events")
    write(frame(any_spark, V1).where("id > 5"), target)

    back = read_table(any_spark, str(target))
    assert back.columns == ["id", "name"]
    assert back.count() == 0


def test_append_adds_to_the_current_version(any_spark, tmp_path):
    target = str(tmp_path / "events")
    write(frame(any_spark, V1), target)
    write(frame(any_spark, V1[:1]), target)

    write(frame(any_spark, [(4, "d")]), target, mode="append")
    assert rows_of(read_table(any_spark, str(target))) == [(1, "a"), (4, "d")]


def test_a_delta_folder_is_not_replaced_by_parquet(spark, connect_spark, tmp_path):
    """Delta's own overwrite for Delta paths; a session without Delta says so instead of converting."""
    target = str(tmp_path / "events")
    write_table(frame(connect_spark, V1), target, format="delta")

    with pytest.raises(ValueError, match="is a Delta table and this session cannot write Delta"):
        write_table(frame(spark, [(9, "z")]), target)

    write_table(frame(connect_spark, [(9, "z")]), target)  # Sail writes Delta: a new commit
    assert rows_of(read_table(connect_spark, target)) == [(9, "z")]
    old = connect_spark.read.format("delta").option("versionAsOf", 0).load(target)
    assert rows_of(old) == V1  # time travel keeps the old version
