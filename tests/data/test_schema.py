"""Validation: missing columns are errors naming them; bad rows are rejected with a reason, never dropped."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

from spark_recs.data.io import read_table
from spark_recs.data.schema import SchemaError, require_columns, validate

# One row per line; the comment after each is the expected outcome (first failing check wins).
BAD_RATINGS = """\
user,item,rating,timestamp
1,10,4.0,964982703
1,11,3.5,964982704
2,10,5,2000-01-01 00:00:00
,12,4.0,964982705
3,,4.0,964982706
3,13,4.0,not-a-time
3,14,abc,964982707
4,15,NaN,964982708
1,10,4.0,964982703
1,10,4.0,964982703
,12,4.0,964982705
5,16,,964982709
,17,junk,not-a-time
"""
EXPECTED_REJECTED = {
    "null user": 3,  # two copies of ",12,..." (a null id outranks "duplicate") and ",17,junk,not-a-time"
    "null item": 1,
    "unparseable timestamp": 1,
    "non-numeric rating": 3,  # "abc", "NaN" and an empty field
    "duplicate event": 2,  # the 2nd and 3rd copies of the first line
}
EXPECTED_ACCEPTED = {(1, 10, 4.0, 964982703.0), (1, 11, 3.5, 964982704.0), (2, 10, 5.0, 946684800.0)}


def frame(spark, rows: list, schema: str):
    """A DataFrame from rows through pandas and Arrow (on classic Spark a Python list runs Python workers: slow)."""
    names = [field.split()[0] for field in schema.split(",")]
    return spark.createDataFrame(pd.DataFrame(rows, columns=names, dtype=object), schema)


def data_lines(path) -> int:
    return len(path.read_text().splitlines()) - 1


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(BAD_RATINGS)
    return path


def test_bad_rows_rejected_with_exact_counts_per_reason(any_spark, bad_file):
    result = validate(read_table(any_spark, str(bad_file)), ["user", "item"], "timestamp", "rating")

    assert result.rejected_by_reason == EXPECTED_REJECTED
    assert result.rows_in == result.n_accepted + result.n_rejected == data_lines(bad_file) == 13
    assert result.n_rejected == sum(EXPECTED_REJECTED.values())
    assert result.accepted.count() == result.n_accepted == 3
    rejected = result.rejected.toPandas()
    assert len(rejected) == result.n_rejected
    assert rejected["reason"].value_counts().to_dict() == EXPECTED_REJECTED


def test_accepted_rows_are_typed(any_spark, bad_file):
    accepted = validate(
        read_table(any_spark, str(bad_file)), ["user", "item"], "timestamp", "rating"
    ).accepted

    assert dict(accepted.dtypes) == {
        "user": "bigint",
        "item": "bigint",
        "rating": "double",
        "timestamp": "double",
    }
    assert {tuple(r) for r in accepted.collect()} == EXPECTED_ACCEPTED


def test_rejected_rows_keep_original_values(any_spark, bad_file):
    rejected = validate(
        read_table(any_spark, str(bad_file)), ["user", "item"], "timestamp", "rating"
    ).rejected
    rows = {tuple(r) for r in rejected.collect()}

    assert rejected.columns == ["user", "item", "rating", "timestamp", "reason"]
    assert ("3", "13", "4.0", "not-a-time", "unparseable timestamp") in rows
    assert ("3", "14", "abc", "964982707", "non-numeric rating") in rows
    assert ("4", "15", "NaN", "964982708", "non-numeric rating") in rows
    assert ("5", "16", None, "964982709", "non-numeric rating") in rows
    assert ("1", "10", "4.0", "964982703", "duplicate event") in rows
    assert (None, "17", "junk", "not-a-time", "null user") in rows


def test_missing_column_names_it_and_the_columns_found(any_spark, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,item,rating,timestamp\n1,2,3.0,4\n")
    df = read_table(any_spark, str(path))

    with pytest.raises(SchemaError) as err:
        validate(df, ["user", "item"], "timestamp", "rating")
    message = str(err.value)
    assert "'user'" in message
    assert "columns found: ['userId', 'item', 'rating', 'timestamp']" in message
    assert "did you mean 'userId'" in message


def test_every_missing_column_is_named(spark):
    df = frame(spark, [(1, 2)], "SessionId long, Other long")

    with pytest.raises(SchemaError, match=r"'ItemId'.*'Time'.*columns found: \['SessionId', 'Other'\]"):
        require_columns(df, ["SessionId", "ItemId", "Time"], "session log")


def test_string_ids_kept_as_strings_and_trimmed(any_spark):
    df = frame(any_spark, [(" a1 ", "7", 1.5), ("b2", " 8", 2.5)], "s string, i string, t double")
    result = validate(df, ["s", "i"], "t")

    assert dict(result.accepted.dtypes) == {"s": "string", "i": "bigint", "t": "double"}
    assert sorted(tuple(r) for r in result.accepted.collect()) == [("a1", 7, 1.5), ("b2", 8, 2.5)]
    assert result.n_rejected == 0


def test_blank_ids_are_null_ids_and_do_not_make_a_column_strings(any_spark):
    rows = [("", "1", 1.0), ("  ", "2", 2.0), ("7", "", 3.0), ("7", "3", 4.0), (" 8", "4", 5.0)]
    result = validate(frame(any_spark, rows, "s string, i string, t double"), ["s", "i"], "t")

    assert dict(result.accepted.dtypes) == {"s": "bigint", "i": "bigint", "t": "double"}
    assert sorted(tuple(r) for r in result.accepted.collect()) == [(7, 3, 4.0), (8, 4, 5.0)]
    assert result.rejected_by_reason == {"null s": 2, "null i": 1}
    assert sorted(tuple(r) for r in result.rejected.collect()) == [
        ("", "1", "1.0", "null s"),
        ("  ", "2", "2.0", "null s"),
        ("7", "", "3.0", "null i"),
    ]


def test_long_ids_reject_non_integers(any_spark):
    df = frame(any_spark, [("1", "2"), ("x1", "3"), ("4", "5.5"), (None, "6")], "user string, item string")
    result = validate(df, ["user", "item"], id_type="long")

    assert result.rejected_by_reason == {"null or non-integer user": 2, "null or non-integer item": 1}
    assert [tuple(r) for r in result.accepted.collect()] == [(1, 2)]


def test_typed_timestamp_and_numeric_columns(any_spark):
    ts = dt.datetime(2020, 1, 1, 0, 0, 10)
    df = frame(any_spark, [(1, 2, ts, 4), (1, 3, None, 5)], "u long, i int, ts timestamp_ntz, r int")
    result = validate(df, ["u", "i"], "ts", "r")

    assert result.rejected_by_reason == {"unparseable ts": 1}
    assert [tuple(r) for r in result.accepted.collect()] == [(1, 2, 1577836810.0, 4.0)]


def test_clean_input_has_no_rejections(any_spark):
    df = any_spark.range(50).select(F.col("id").alias("a"), (F.col("id") % 7).alias("b"))
    result = validate(df, ["a", "b"])

    assert (result.rows_in, result.n_accepted, result.n_rejected) == (50, 50, 0)
    assert result.rejected_by_reason == {}
    assert result.rejected.count() == 0
    assert "rows in = 50 = accepted 50 + rejected 0" in result.summary()
    assert result.warnings == {} and "warnings" not in result.summary()


def test_invalid_id_type(spark):
    df = frame(spark, [(1, 2)], "a long, b long")
    with pytest.raises(ValueError, match="id_type"):
        validate(df, ["a", "b"], id_type="int")


def test_nan_and_infinite_times_are_rejected(any_spark):
    rows = [(1, 2, 10.0), (1, 3, float("nan")), (2, 4, float("inf")), (2, 5, "NaN"), (3, 6, "-Infinity")]
    df = frame(any_spark, [(u, i, str(t)) for u, i, t in rows], "s long, i long, t string")
    result = validate(df, ["s", "i"], "t")

    assert result.rejected_by_reason == {"unparseable t": 4}
    assert [tuple(r) for r in result.accepted.collect()] == [(1, 2, 10.0)]


def utc_seconds(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()


def test_time_strings_need_a_full_date(any_spark):
    full = {
        "1396437466.94": 1396437466.94,
        "2014-04-07 10:51:09": utc_seconds(2014, 4, 7, 10, 51, 9),
        "2014-04-07T10:51:09.277Z": utc_seconds(2014, 4, 7, 10, 51, 9, 277_000),
        " 2014-04-07 ": utc_seconds(2014, 4, 7),
        "2014-4-7 10:51": utc_seconds(2014, 4, 7, 10, 51),
    }
    # Spark fills a missing date with the day it runs on (a missing day with the 1st): all rejected.
    partial = ["12:30:00", "T12:30", "10:51", "12:30:00Z", "2014-04", "April 7", "2014/04/07"]
    rows = [(i, i, t) for i, t in enumerate([*full, *partial])]
    result = validate(frame(any_spark, rows, "s long, i long, Time string"), ["s", "i"], "Time")

    assert result.rejected_by_reason == {"unparseable Time": len(partial)}
    assert sorted(r["Time"] for r in result.rejected.collect()) == sorted(partial)
    accepted = {r["s"]: r["Time"] for r in result.accepted.collect()}
    assert accepted == pytest.approx(dict(enumerate(full.values())))


def test_suspicious_times_are_accepted_and_counted_as_warnings(any_spark):
    now = dt.datetime.now(dt.UTC)
    rows = [
        (1, 1, "1396437466"),
        (1, 2, "1396437466940"),  # milliseconds
        (1, 3, "1396437467940"),
        (1, 3, "1396437467940"),  # a duplicate: rejected, so not counted
        (None, 4, "1396437468940"),  # rejected (null id): not counted
        (2, 5, "-5"),
        (2, 6, str(now.year + 1) + "-01-01 00:00:00"),  # next year
        (2, 7, "1969-12-31 23:59:59"),  # negative too
    ]
    result = validate(frame(any_spark, rows, "s long, i long, Time string"), ["s", "i"], "Time")

    assert (result.n_accepted, result.rejected_by_reason) == (6, {"null s": 1, "duplicate event": 1})
    assert result.warnings == {"Time looks like milliseconds": 2, "negative Time": 2, "Time in the future": 1}
    summary = result.summary()
    assert "warnings: Time in the future: 1 (" in summary
    assert "Time looks like milliseconds: 2 (divide by 1000" in summary
    assert "negative Time: 2 (before 1970" in summary


def test_a_few_non_integer_ids_among_integers_warn(any_spark):
    items = [str(n) for n in range(200)] + ["x-1", "abc"]  # 2 of 202 ids (under 1%) are not integers
    rows = [(f"s{n % 3}", item, float(n)) for n, item in enumerate(items)]
    df = frame(any_spark, rows, "SessionId string, ItemId string, Time double")
    result = validate(df, ["SessionId", "ItemId"], "Time")

    assert dict(result.accepted.dtypes)["ItemId"] == "string"  # the documented rule still holds
    assert result.n_accepted == 202
    assert result.warnings == {"non-integer ItemId": 2}  # SessionId is all strings: no warning
    fix = result.fixes["non-integer ItemId"]
    assert "'abc', 'x-1'" in fix and 'id_type="long"' in fix
    assert "non-integer ItemId: 2 (e.g. 'abc', 'x-1'" in result.summary()

    strict = validate(df, ["ItemId"], "Time", id_type="long")
    assert strict.rejected_by_reason == {"null or non-integer ItemId": 2}
    assert strict.warnings == {}


def test_mostly_string_ids_do_not_warn(any_spark):
    df = frame(any_spark, [("1", 1.0), ("2", 2.0), ("a", 3.0)], "ItemId string, Time double")
    result = validate(df, ["ItemId"], "Time")

    assert dict(result.accepted.dtypes)["ItemId"] == "string"
    assert result.warnings == {}


@pytest.mark.parametrize(
    ("id_type", "accepted", "reasons", "rejected_notes"),
    [
        ("long", [(1, "a"), (2, "b")], {"null or non-integer user": 4}, {"c", "d", "e", "f"}),
        ("string", [("1", "a"), ("2", "b"), ("3.5", "f"), ("abc", "e")], {"null user": 2}, {"c", "d"}),
    ],
)
def test_user_ids_alone_with_the_model_id_type(any_spark, id_type, accepted, reasons, rejected_notes):
    rows = [("1", "a"), (" 2 ", "b"), ("", "c"), (None, "d"), ("abc", "e"), ("3.5", "f")]
    result = validate(frame(any_spark, rows, "user string, note string"), ["user"], id_type=id_type)

    assert result.accepted.columns == ["user", "note"]
    assert sorted(tuple(r) for r in result.accepted.collect()) == accepted
    assert result.rejected_by_reason == reasons
    assert {r["note"] for r in result.rejected.collect()} == rejected_notes


def test_duplicates_are_equal_in_every_column_as_pandas_counts_them(any_spark):
    # Typed columns (bigint ids, double time) and an extra column: copies are equal in every value, with
    # nulls equal to nulls, NaN to NaN and -0.0 to 0.0 (as pandas' duplicated); the first copy is kept.
    rows = [
        (1, 10, 5.0, 0.5, None),
        (1, 10, 5.0, 0.5, None),  # copy
        (1, 10, 5.0, 0.5, "x"),
        (1, 10, 5.0, float("nan"), "x"),
        (1, 10, 5.0, float("nan"), "x"),  # copy
        (2, 10, 5.0, -0.0, "y"),
        (2, 10, 5.0, 0.0, "y"),  # copy
        (2, 11, 5.0, 0.0, "y"),
        (3, 10, None, 1.0, None),
        (3, 10, None, 1.0, None),  # unparseable time wins over duplicate: both rejected for it
    ]
    schema = "s long, i long, t double, w double, note string"
    result = validate(any_spark.createDataFrame(rows, schema), ["s", "i"], "t")
    expected = pd.DataFrame(rows, columns=["s", "i", "t", "w", "note"])
    copies = int((expected.duplicated() & expected["t"].notna()).sum())
    assert result.rejected_by_reason == {"duplicate event": copies, "unparseable t": 2} and copies == 3
    accepted = result.accepted.toPandas()
    assert len(accepted) == 5 and sorted(accepted["s"]) == [1, 1, 1, 2, 2]
