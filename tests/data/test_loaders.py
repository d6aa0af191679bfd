"""MovieLens and session-log loaders on the real data sets in ../shared/data, on both engines.

Each real file is read once per engine (module-scoped fixtures that reduce it to plain facts); the
expected values come from the files themselves (parsed here in plain Python) or their READMEs.
"""

from __future__ import annotations

import csv
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import shared_data
from pyspark.sql import functions as F

from spark_recs.data.movielens import (
    GENRES_100K,
    genre_vectors,
    load_items,
    load_ratings,
    load_tags,
    load_users,
    movielens_layout,
)
from spark_recs.data.schema import SchemaError
from spark_recs.data.sessions import load_diginetica, load_sessions


class Engine:
    """One Spark engine; ``active()`` switches pyspark's function API to it while a fixture uses it."""

    def __init__(self, name: str, session):
        self.name, self.session = name, session

    @contextmanager
    def active(self):
        with pytest.MonkeyPatch.context() as patch:
            if self.name == "connect":
                patch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
            else:
                patch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
            yield self.session


@pytest.fixture(scope="module", params=["classic", "connect"])
def engine(request):
    return Engine(
        request.param, request.getfixturevalue("spark" if request.param == "classic" else "_connect_session")
    )


def counts(df, *distinct: str) -> tuple[int, ...]:
    """``(rows, distinct values of each column)`` in one Spark job."""
    row = df.agg(F.count(F.lit(1)), *[F.countDistinct(c) for c in distinct]).first()
    return tuple(int(v) for v in row)


def data_lines(path) -> int:
    with open(path, encoding="latin-1") as f:
        return sum(1 for line in f if line.strip()) - 1


# --- MovieLens 100k ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml100k(engine):
    path = shared_data("ml-100k")
    with engine.active() as spark:
        ratings = load_ratings(spark, path)
        items = load_items(spark, path)
        return {
            "engine": engine.name,
            "ratings": ratings,
            "counts": counts(ratings.accepted, "user", "item"),
            "dtypes": dict(ratings.accepted.dtypes),
            "first": ratings.accepted.where("user = 196 AND item = 242").collect(),
            "ratings_values": sorted(r[0] for r in ratings.accepted.select("rating").distinct().collect()),
            "u1_base": load_ratings(spark, path, file="u1.base").n_accepted,
            "items": {r["item"]: r.asDict() for r in items.collect()},
            "item_columns": items.columns,
            "users": {r["user"]: tuple(r) for r in load_users(spark, path).collect()},
            "genres": genre_vectors(spark, path),
        }


def test_ml100k_ratings(ml100k):
    ratings = ml100k["ratings"]

    assert (ratings.rows_in, ratings.n_accepted, ratings.n_rejected) == (100_000, 100_000, 0)
    assert ml100k["counts"] == (100_000, 943, 1_682)
    assert ml100k["dtypes"] == {"user": "bigint", "item": "bigint", "rating": "double", "timestamp": "double"}
    assert [tuple(r) for r in ml100k["first"]] == [(196, 242, 3.0, 881250949.0)]  # the first line of u.data
    assert ml100k["ratings_values"] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_ml100k_split_file(ml100k):
    assert ml100k["u1_base"] == data_lines(shared_data("ml-100k/u1.base")) + 1 == 80_000  # no header


def test_ml100k_items_have_the_genre_flags_of_the_file(ml100k):
    items = ml100k["items"]
    with open(shared_data("ml-100k/u.item"), encoding="latin-1") as f:
        expected = {int(p[0]): (p[1], p[5:]) for p in (line.rstrip("\n").split("|") for line in f)}

    assert len(items) == len(expected) == 1_682
    assert ml100k["item_columns"][:4] == ["item", "title", "release_date", "genres"]
    for item, (title, flags) in expected.items():
        row = items[item]
        # pysail 0.7 ignores the CSV `encoding` option, so its Latin-1 titles (e.g. "Misérables") are mangled.
        if ml100k["engine"] == "classic" or title.isascii():
            assert row["title"] == (title or None)
        assert [row[g] for g in GENRES_100K] == [int(f) for f in flags], item
        assert row["genres"] == [g for g, f in zip(GENRES_100K, flags) if f == "1"], item
    toy_story = items[1]
    assert (toy_story["title"], toy_story["genres"]) == (
        "Toy Story (1995)",
        ["Animation", "Children's", "Comedy"],
    )
    assert items[2]["genres"] == ["Action", "Adventure", "Thriller"]  # GoldenEye
    assert items[267]["genres"] == ["unknown"]


def test_ml100k_users(ml100k):
    users = ml100k["users"]

    assert len(users) == 943
    assert users[1] == (1, 24, "M", "technician", "85711")
    assert users[943] == (943, 22, "M", "student", "77841")


# --- MovieLens latest-small (the ratings.csv layout of ML-20M) ----------------------------------------


@pytest.fixture(scope="module")
def ml_latest(engine):
    path = shared_data("ml-latest-small")
    with engine.active() as spark:
        ratings = load_ratings(spark, path)
        return {
            "ratings": ratings,
            "accepted": ratings.accepted.count(),
            "rejected": [tuple(r) for r in ratings.rejected.collect()],
            "items": {r["item"]: (r["title"], r["genres"]) for r in load_items(spark, path).collect()},
            "genres": genre_vectors(spark, path),
        }


def test_ml_latest_ratings_reject_the_corrupt_row(ml_latest):
    ratings = ml_latest["ratings"]

    assert ratings.rejected_by_reason == {"unparseable timestamp": 1}
    assert ratings.n_accepted == ml_latest["accepted"] == 100_835
    assert ratings.rows_in == ratings.n_accepted + ratings.n_rejected
    assert ratings.rows_in == data_lines(shared_data("ml-latest-small/ratings.csv"))
    [(user, item, rating, timestamp, reason)] = ml_latest["rejected"]
    assert (user, item, rating, reason) == ("5", "39", "3.0", "unparseable timestamp")
    assert timestamp.startswith("84743496 https://")  # the original value, kept as it was


def test_ml_latest_items_match_movies_csv(ml_latest):
    with open(shared_data("ml-latest-small/movies.csv"), encoding="utf-8", newline="") as f:
        expected = {int(r["movieId"]): (r["title"], r["genres"].split("|")) for r in csv.DictReader(f)}

    assert ml_latest["items"] == expected
    assert ml_latest["items"][11] == ("American President, The (1995)", ["Comedy", "Drama", "Romance"])
    assert ml_latest["items"][7789][0] == "11'09\"01 - September 11 (2002)"  # "" inside quotes is one "


def _genre_sets(vectors, names: list[str]) -> dict[int, set[str]]:
    assert all(len(v) == len(names) and set(np.unique(v)) <= {0.0, 1.0} for v in vectors["vector"])
    return {int(i): {names[j] for j in np.flatnonzero(v)} for i, v in zip(vectors["item"], vectors["vector"])}


def test_genre_vectors_are_each_movies_genres_over_the_sorted_genre_names(ml_latest, ml100k):
    """One 0/1 entry per genre name, in sorted order; a movie without a genre ("(no genres listed)" in
    latest-small, only "unknown" in 100k) has no vector, so diversity leaves it out."""
    with open(shared_data("ml-latest-small/movies.csv"), encoding="utf-8", newline="") as f:
        expected = {
            int(r["movieId"]): set(r["genres"].split("|")) - {"(no genres listed)"} for r in csv.DictReader(f)
        }
    expected = {item: genres for item, genres in expected.items() if genres}
    vectors = ml_latest["genres"]
    assert vectors["item"].tolist() == sorted(expected) and len(expected) == 9_708  # 34 movies without
    found = _genre_sets(vectors, sorted(set().union(*expected.values())))
    assert found == expected and found[11] == {"Comedy", "Drama", "Romance"}

    flags = {item: {g for g in GENRES_100K[1:] if row[g] == 1} for item, row in ml100k["items"].items()}
    flags = {item: genres for item, genres in flags.items() if genres}
    assert len(flags) == 1_680 and _genre_sets(ml100k["genres"], sorted(GENRES_100K[1:])) == flags


# --- session logs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsc15(engine):
    path = shared_data("sessions/rsc15_100k/yoochoose-clicks-100k_train_full.txt")
    with engine.active() as spark:
        log = load_sessions(spark, path)
        accepted = log.accepted
        return {
            "log": log,
            "path": path,
            "counts": counts(accepted, "SessionId", "ItemId"),
            "dtypes": dict(accepted.dtypes),
            "time_range": tuple(accepted.agg(F.min("Time"), F.max("Time")).first()),
            "rejected": [tuple(r) for r in log.rejected.collect()],
        }


def test_rsc15_train_full(rsc15):
    log = rsc15["log"]

    assert log.rows_in == data_lines(rsc15["path"]) == 70_278
    assert (log.n_accepted, log.rejected_by_reason) == (70_277, {"duplicate event": 1})
    assert rsc15["rejected"] == [("29242", "214644339", "1396771501.984", "duplicate event")]
    assert rsc15["counts"] == (70_277, 17_794, 2_933)
    assert rsc15["dtypes"] == {"SessionId": "bigint", "ItemId": "bigint", "Time": "double"}
    assert rsc15["time_range"] == pytest.approx((1396314141.719, 1396831392.56))


@pytest.fixture(scope="module")
def diginetica(engine):
    path = shared_data("sessions/diginetica_sample/sample_train-item-views.csv")
    with engine.active() as spark:
        log = load_diginetica(spark, path)
        custom = load_sessions(
            spark, path, session_key="session_id", item_key="item_id", time_key="timeframe", sep=";"
        )
        try:
            load_sessions(spark, path, sep=";")
        except SchemaError as err:
            missing = str(err)
        return {
            "log": log,
            "path": path,
            "counts": counts(log.accepted, "SessionId", "ItemId"),
            "first": log.accepted.where("SessionId = 1 AND ItemId = 81766").collect(),
            "custom": custom,
            "custom_dtypes": dict(custom.accepted.dtypes),
            "missing": missing,
        }


def test_diginetica_views(diginetica):
    log = diginetica["log"]

    assert log.rows_in == data_lines(diginetica["path"]) == 12_391
    assert (log.n_accepted, log.n_rejected) == (12_391, 0)
    assert diginetica["counts"] == (12_391, 2_986, 7_139)  # events, sessions, items (README)
    # The first raw row: 1;NA;81766;526309;2016-05-09 -> midnight of the day (UTC) + 526.309 s.
    [(session, item, time)] = [tuple(r) for r in diginetica["first"]]
    assert (session, item) == (1, 81766)
    assert time == pytest.approx(1462752000 + 526.309)


def test_session_column_names_are_configurable(diginetica):
    custom = diginetica["custom"]

    assert custom.rows_in == custom.n_accepted == 12_391
    assert diginetica["custom_dtypes"] == {
        "session_id": "bigint",
        "user_id": "string",
        "item_id": "bigint",
        "timeframe": "double",
        "eventdate": "string",
    }


def test_session_log_without_the_default_columns(diginetica):
    message = diginetica["missing"]

    assert "'SessionId' (did you mean 'session_id'?)" in message
    assert "'ItemId'" in message and "'Time'" in message
    assert "columns found: ['session_id', 'user_id', 'item_id', 'timeframe', 'eventdate']" in message


# --- small hand-made layouts --------------------------------------------------------------------------


def test_session_file_with_string_ids_and_timestamps(any_spark, tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text(
        "sid,iid,ts\n"
        "s1,apple,2024-03-01 10:00:00\n"
        "s1,pear,2024-03-01 10:00:30\n"
        "s2,apple,1709287200.5\n"
        "s2,plum,yesterday\n"
        "s1,apple,2024-03-01 10:00:00\n"
    )
    log = load_sessions(any_spark, path, session_key="sid", item_key="iid", time_key="ts")

    assert log.rejected_by_reason == {"unparseable ts": 1, "duplicate event": 1}
    assert log.rows_in == 5
    assert sorted(tuple(r) for r in log.accepted.collect()) == [
        ("s1", "apple", 1709287200.0),
        ("s1", "pear", 1709287230.0),
        ("s2", "apple", 1709287200.5),
    ]


def test_movielens_dat_layout(any_spark, tmp_path):
    (tmp_path / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::x::978298413\n2::661::4::12:30:00\n"
    )
    (tmp_path / "movies.dat").write_text(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n"
    )

    ratings = load_ratings(any_spark, tmp_path)
    items = load_items(any_spark, tmp_path)

    assert movielens_layout(tmp_path) == "dat"
    # A time without a date would become the day of the run: rejected.
    assert ratings.rejected_by_reason == {"non-numeric rating": 1, "unparseable timestamp": 1}
    assert sorted(tuple(r) for r in ratings.accepted.collect()) == [
        (1, 661, 3.0, 978302109.0),
        (1, 1193, 5.0, 978300760.0),
    ]
    assert sorted(tuple(r) for r in items.collect()) == [
        (1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
        (2, "Jumanji (1995)", ["Adventure"]),
    ]
    with pytest.raises(ValueError, match="only in the ml-100k layout"):
        load_users(any_spark, tmp_path)


def test_movielens_tags(any_spark, tmp_path):
    assert load_tags(any_spark, tmp_path) is None  # a folder without tags.csv (ml-100k, 1M)
    (tmp_path / "tags.csv").write_text(
        'userId,movieId,tag,timestamp\n2,60756,funny,1445714994\n2,89774,"Tom Hardy, boxing",1445715205\n'
    )
    tags = load_tags(any_spark, tmp_path)
    assert dict(tags.dtypes) == {"item": "bigint", "tag": "string"}
    assert sorted(tuple(r) for r in tags.collect()) == [(60756, "funny"), (89774, "Tom Hardy, boxing")]


def test_diginetica_rows_without_a_full_date_or_timeframe_are_rejected(any_spark, tmp_path):
    path = tmp_path / "train-item-views.csv"
    path.write_text(
        "sessionId;userId;itemId;timeframe;eventdate\n"
        "1;NA;5;1500;2016-05-09\n"
        "2;NA;6;2000;NA\n"
        "3;NA;7;3000;2016-05\n"
        "4;NA;8;4000;12:30\n"
        "5;NA;9;abc;2016-05-09\n"
    )
    log = load_diginetica(any_spark, path)

    assert log.rejected_by_reason == {"unparseable Time": 4}
    assert sorted(r["SessionId"] for r in log.rejected.collect()) == ["2", "3", "4", "5"]
    assert [tuple(r) for r in log.accepted.collect()] == [(1, 5, 1462752000 + 1.5)]  # 2016-05-09 UTC + 1.5 s


def test_not_a_movielens_folder(tmp_path):
    (tmp_path / "ratings.txt").write_text("1,2,3,4\n")

    with pytest.raises(FileNotFoundError, match="not a MovieLens folder"):
        movielens_layout(tmp_path)
