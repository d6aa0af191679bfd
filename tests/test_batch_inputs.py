"""What batch does with inputs that do not fit the model: ids of another type, null ids, unknown items,
bad list lengths (issue "Trustworthy on every path")."""

import logging
import subprocess
import sys

import pandas as pd
import pytest

from spark_recs import batch
from spark_recs.models.popular import Popular
from spark_recs.models.vocabulary import Vocabulary

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATINGS = pd.DataFrame({"user": [1, 1, 2, 3], "item": [10, 20, 10, 30]})  # counts: 10 -> 2, 20, 30 -> 1


def _lists(frame: pd.DataFrame, key: str) -> dict:
    frame = frame.sort_values([key, "rank"])
    return {k: g["item"].tolist() for k, g in frame.groupby(key)}


def test_vocabulary_matches_ids_by_value_across_types():
    integers, strings = Vocabulary.fit([10, 20, 30]), Vocabulary.fit(["10", "20", "abc"])
    assert integers.indices(["20", " 30", "abc", "", "20.0", None]).tolist() == [1, 2, -1, -1, -1, -1]
    assert integers.indices(["99999999999999999999999"]).tolist() == [-1]  # beyond int64: unknown
    assert strings.indices([20, 10, 30]).tolist() == [1, 0, -1]
    assert strings.indices(["abc", 20, True]).tolist() == [2, 1, -1]


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_a_bad_list_length_is_refused_before_any_spark_job(spark, n):
    with pytest.raises(ValueError, match=f"n must be a whole number of items >= 1.*got {n!r}"):
        batch.recommend(Popular().fit(RATINGS), [1], n, spark=spark)
    with pytest.raises(ValueError, match="n must be a whole number"):
        batch.recommend_sessions(Popular().fit(RATINGS), spark.range(1), n)


def test_string_model_ids_match_integer_inputs(any_spark):
    """A model trained on string ids (one bad id made the column strings) still finds integer inputs."""
    model = Popular().fit(RATINGS.astype({"user": str, "item": str}))
    got = batch.recommend(model, any_spark.createDataFrame(pd.DataFrame({"user": [1, 2]})), 2).toPandas()
    assert _lists(got, "user") == {1: ["30"], 2: ["20", "30"]}

    events = any_spark.createDataFrame(
        pd.DataFrame({"SessionId": [7, 7], "ItemId": [20, 30], "Time": [1.0, 2.0]})
    )
    recs = batch.recommend_sessions(model, events, 2).toPandas()
    assert recs["item"].tolist() == ["10", "20"] and recs["position"].tolist() == [2, 2]


def test_integer_model_ids_match_string_inputs(any_spark):
    model = Popular().fit(RATINGS)
    pairs = any_spark.createDataFrame(pd.DataFrame({"user": ["1", " 2"], "item": ["10", "30"]}))
    got = batch.predict(model, pairs).toPandas()
    assert got["prediction"].tolist() == [2.0, 1.0]


def test_sessions_without_a_known_item_are_counted_and_skipped(any_spark, caplog):
    model = Popular().fit(RATINGS)
    events = pd.DataFrame(
        {"SessionId": ["a", "a", "b", "c", "c"], "ItemId": [10, 99, 98, 97, 96], "Time": [1.0, 2, 3, 4, 5]}
    )
    with caplog.at_level(logging.WARNING, logger="spark_recs.batch"):
        recs = batch.recommend_sessions(model, any_spark.createDataFrame(events), 1).toPandas()
    assert recs["SessionId"].tolist() == ["a"]
    assert (
        "2 of 3 sessions skipped (no item known to the model); 4 events on unknown items ignored"
        in caplog.text
    )


def test_no_session_with_a_known_item_is_an_error_naming_both_types(any_spark):
    model = Popular().fit(RATINGS.astype({"item": str}).assign(item=lambda f: "i" + f["item"]))
    events = any_spark.createDataFrame(
        pd.DataFrame({"SessionId": [1, 2], "ItemId": [10, 20], "Time": [1.0, 2.0]})
    )
    with pytest.raises(
        ValueError, match=r"none of the 2 sessions .*\(ItemId is bigint, the model's item ids are string\)"
    ):
        batch.recommend_sessions(model, events, 3)


def test_null_ids_are_refused(any_spark):
    model = Popular().fit(RATINGS)
    users = any_spark.createDataFrame(pd.DataFrame({"user": [1.0, None]}).astype("Int64"))
    with pytest.raises(ValueError, match="users: 1 null user value"):
        batch.recommend(model, users, 2)
    pairs = any_spark.createDataFrame(pd.DataFrame({"user": [1, 2], "item": ["10", None]}))
    with pytest.raises(ValueError, match="pairs: 1 row.* null user or item"):
        batch.predict(model, pairs)


def test_a_list_of_ids_in_a_fresh_process_starts_the_default_session(tmp_path):
    """LensKit's call ``batch.recommend(algo, [1, 2, 3], 10)`` with no session yet: the embedded one starts."""
    script = (
        "import pandas as pd\n"
        "from spark_recs import batch\n"
        "from spark_recs.models.popular import Popular\n"
        "model = Popular().fit(pd.DataFrame({'user': [1, 2], 'item': [10, 20]}))\n"
        "print(sorted(batch.recommend(model, [1, 2, 3], 10).toPandas()['item'].tolist()))\n"
    )
    env = {"SPARK_RECS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[10, 10, 20, 20]"
