"""The source resolver: one rule per format (table name, URI, MovieLens folder, Delta/Parquet path, text
file), the one-line not-found and empty-source errors, on classic Spark and Spark Connect."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from conftest import shared_data

from spark_recs.data.io import write_table
from spark_recs.data.schema import RatingColumns, SchemaError
from spark_recs.data.sources import (
    check_source,
    is_movielens,
    read_ratings,
    read_sessions,
    read_source,
    require_source,
    synthetic_log,
)

RATINGS = pd.DataFrame(
    {"user": [1, 1, 2], "item": [10, 20, 10], "rating": [4.0, 3.0, 5.0], "timestamp": [100, 200, 150]}
)
EXPECTED = [(1, 10, 4.0, 100.0), (1, 20, 3.0, 200.0), (2, 10, 5.0, 150.0)]


def rows(validated) -> list[tuple]:
    return sorted(tuple(r) for r in validated.accepted.collect())


# ---- which rule a source falls under (no Spark) ----------------------------------------------------


def test_one_movielens_rule_for_every_layout(tmp_path, monkeypatch):
    for name in ("u.data", "ratings.csv", "ratings.dat"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text("1\t2\t3\t4\n")
        assert is_movielens(str(folder)), name
    (tmp_path / "ratings.parquet").mkdir()
    (tmp_path / "clicks.csv").write_text("a,b\n")
    for source in ("ratings.parquet", "clicks.csv", "missing", "s3://bucket/ml-100k"):
        assert not is_movielens(str(tmp_path / source) if "://" not in source else source), source
    # A name without '/' is a table name, even where a MovieLens folder of that name exists.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ml_100k").mkdir()
    (tmp_path / "ml_100k" / "u.data").write_text("1\t2\t3\t4\n")
    assert not is_movielens("ml_100k") and is_movielens("./ml_100k")


def test_a_missing_local_path_is_an_error_before_spark(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        check_source(str(tmp_path / "ratings.csv"), "data.ratings")
    assert str(error.value) == (
        f"data.ratings: {tmp_path / 'ratings.csv'} does not exist; pass an existing file or folder, "
        "or a catalog.schema.table name"
    )
    for source in ("main.recs.ratings", "ratings", "s3://bucket/ratings", "dbfs:/Volumes/a/b/c.csv"):
        check_source(source, "data.ratings")  # nothing local to look at


# ---- each format, on both engines -------------------------------------------------------------------


def test_a_table_name(any_spark):
    name = f"sources_ratings_{uuid.uuid4().hex[:8]}"
    write_table(any_spark.createDataFrame(RATINGS), name)
    try:
        require_source(any_spark, name, "data.ratings")
        assert rows(read_ratings(any_spark, name, "data.ratings")) == EXPECTED
        assert sorted(tuple(r) for r in read_source(any_spark, name, "users").collect()) == [
            (1, 10, 4.0, 100),
            (1, 20, 3.0, 200),
            (2, 10, 5.0, 150),
        ]
    finally:
        any_spark.sql(f"DROP TABLE IF EXISTS {name}")


def test_a_missing_table_is_one_line(any_spark):
    with pytest.raises(FileNotFoundError) as error:
        read_ratings(any_spark, "no_such_schema.ratings", "data.ratings")
    message = str(error.value)
    assert message.startswith("data.ratings: table no_such_schema.ratings not found")
    assert message.endswith(
        "create it, or pass a file or folder path (a path needs a '/', e.g. ./clicks.tsv)"
    )
    assert "\n" not in message


def test_a_parquet_file_and_a_written_folder(any_spark, tmp_path):
    RATINGS.to_parquet(tmp_path / "ratings.parquet")
    assert rows(read_ratings(any_spark, str(tmp_path / "ratings.parquet"))) == EXPECTED
    # The session's storage format (Delta on Sail, Parquet on classic Spark): a folder, not MovieLens.
    folder = str(tmp_path / "ratings")
    write_table(any_spark.createDataFrame(RATINGS), folder)
    assert not is_movielens(folder)
    assert rows(read_ratings(any_spark, folder)) == EXPECTED


def test_a_csv_file_with_its_separator_and_column_names(any_spark, tmp_path):
    path = tmp_path / "ratings.txt"
    path.write_text("uid;iid;stars;when;note\n1;10;4;100;a\n1;20;3;200;b\n2;10;5;150;c\n2;20;n/a;160;d\n")
    columns = RatingColumns("uid", "iid", "stars", "when")
    settings = {"uid": "data.user_key", "iid": "data.item_key"}

    checked = read_ratings(any_spark, str(path), "data.ratings", columns=columns, sep=";", settings=settings)
    assert checked.accepted.columns == ["user", "item", "rating", "timestamp"]
    assert rows(checked) == EXPECTED
    assert (checked.rows_in, checked.rejected_by_reason) == (4, {"non-numeric rating": 1})

    with pytest.raises(SchemaError) as error:
        read_ratings(
            any_spark,
            str(path),
            columns=RatingColumns("user_id", "iid"),
            sep=";",
            settings={"user_id": "data.user_key"},
        )
    message = str(error.value)
    assert f"ratings {path} is missing column(s) 'user_id' (did you mean 'uid'?)" in message
    assert "Rename the columns or pass data.user_key=uid" in message


def test_movielens_folders_of_both_layouts(any_spark):
    ml100k, latest = shared_data("ml-100k"), shared_data("ml-latest-small")

    fold = read_ratings(any_spark, str(ml100k), file="u1.test")
    with open(ml100k / "u1.test") as f:
        first = tuple(float(v) for v in f.readline().split("\t"))
    assert (fold.rows_in, fold.n_accepted) == (20_000, 20_000)
    assert (
        fold.accepted.where(f"user = {first[0]:.0f} AND item = {first[1]:.0f}").collect()[0][2:] == first[2:]
    )

    # A MovieLens folder's columns are its loader's, whatever the mapping says.
    checked = read_ratings(any_spark, str(latest), columns=RatingColumns("userId", "movieId"))
    assert checked.accepted.columns == ["user", "item", "rating", "timestamp"]
    assert (checked.n_accepted, checked.rejected_by_reason) == (100_835, {"unparseable timestamp": 1})
    assert read_source(any_spark, str(latest), "users").columns == ["user", "item", "rating", "timestamp"]

    with pytest.raises(ValueError, match="file='u1.base' needs a MovieLens folder"):
        read_ratings(any_spark, str(latest / "ratings.csv"), file="u1.base")


def test_missing_and_empty_sources(any_spark, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^sessions: .*clicks.tsv does not exist; pass an existing"):
        read_sessions(any_spark, str(tmp_path / "clicks.tsv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty.csv is empty: a text table needs a header line or rows"):
        read_ratings(any_spark, str(tmp_path / "empty.csv"))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match=r"nothing is empty: no data files in it"):
        read_sessions(any_spark, str(tmp_path / "nothing"))


def test_a_session_log_names_the_setting_that_fixes_a_column(any_spark, tmp_path):
    path = tmp_path / "clicks.tsv"
    path.write_text("Session\tItemId\tTime\n1\t2\t3.0\n1\t3\t4.0\n")
    with pytest.raises(SchemaError, match=r"Rename the columns or pass data.session_key=Session\."):
        read_sessions(any_spark, str(path), settings={"SessionId": "data.session_key"})
    log = read_sessions(any_spark, str(path), session_key="Session", id_type={"ItemId": "string"})
    assert sorted(tuple(r) for r in log.accepted.collect()) == [(1, "2", 3.0), (1, "3", 4.0)]


def test_the_synthetic_log_takes_the_column_names(any_spark):
    default = synthetic_log(any_spark, 500, 40, seed=3)
    named = synthetic_log(any_spark, 500, 40, seed=3, session_key="sid", item_key="iid", time_key="ts")
    assert named.accepted.columns == ["sid", "iid", "ts"]
    assert named.rows_in == named.n_accepted == 500
    assert rows(named) == rows(default)
