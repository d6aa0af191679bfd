"""Logged models served by MLflow itself (spark_recs.serving.pyfunc): pyfunc predict, spark_udf, signature
and input example."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from spark_recs.models.bias import Bias
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.topn import recommend_frame
from spark_recs.serving.registry import log_model
from spark_recs.tracking import tracked_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATINGS = pd.DataFrame(
    {
        "user": [1, 1, 1, 2, 2, 3, 3, 3, 4],
        "item": [10, 20, 30, 10, 40, 20, 30, 40, 50],
        "rating": [4.0, 3.0, 5.0, 2.0, 4.0, 5.0, 4.0, 3.0, 1.0],
    }
)
PAIRS = pd.DataFrame({"user": [1, 2, 3, 9, 4], "item": [40, 20, 10, 30, 99]})


@pytest.fixture
def registered_bias(mlflow_uri, work_dir):
    model = Bias(damping=2.0).fit(RATINGS)
    with tracked_run("serving-test", tracking_uri=mlflow_uri):
        # A Unity-Catalog-style three-part name also works on a local registry.
        info = log_model(model, registered_model_name="main.recs.bias", aliases=["champion"])
    return model, info


def test_pyfunc_predicts_pairs_and_recommends_like_the_model(registered_bias):
    model, _ = registered_bias
    served = mlflow.pyfunc.load_model("models:/main.recs.bias@champion")
    got = served.predict(PAIRS)
    users, items = model.user_vocab.indices(PAIRS["user"]), model.item_vocab.indices(PAIRS["item"])
    expected = model.predict_pairs(users, items)
    # Unknown user 9 and unknown item 99 fall back to the biases that are known.
    assert list(got.columns) == ["prediction"] and not got["prediction"].isna().any()
    np.testing.assert_allclose(got["prediction"].to_numpy(), expected, rtol=1e-6)
    recs = served.predict(pd.DataFrame({"user": [3, 1]}), params={"n": 2})
    pd.testing.assert_frame_equal(recs, recommend_frame(model, np.array([3, 1]), 2))


def test_signature_and_input_example_are_logged(registered_bias):
    _, info = registered_bias
    inputs = {spec.name: spec for spec in info.signature.inputs.inputs}
    assert inputs["user"].required and not inputs["item"].required
    assert [o.name for o in info.signature.outputs.inputs] == ["user", "rank", "item", "score"]
    assert info.signature.params.to_dict()[0]["name"] == "n"
    example = mlflow.models.Model.load(info.model_uri).load_input_example(
        mlflow.artifacts.download_artifacts(info.model_uri)
    )
    assert example["user"].tolist() == [1, 2]


def test_spark_udf_scores_pairs(spark, registered_bias):
    model, _ = registered_bias
    udf = mlflow.pyfunc.spark_udf(
        spark, "models:/main.recs.bias@champion", result_type="double", env_manager="local"
    )
    scored = spark.createDataFrame(PAIRS).withColumn("prediction", udf(F.struct("user", "item")))
    got = scored.toPandas().set_index(["user", "item"])["prediction"]
    users, items = model.user_vocab.indices(PAIRS["user"]), model.item_vocab.indices(PAIRS["item"])
    expected = pd.Series(model.predict_pairs(users, items), index=got.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6)


def test_pyfunc_recommends_next_items_for_sessions(mlflow_uri, work_dir):
    rng = np.random.default_rng(0)
    events = pd.DataFrame(
        {
            "SessionId": np.repeat(np.arange(60), 4),
            "ItemId": rng.integers(100, 120, 240),
            "Time": np.arange(240, dtype=float),
        }
    )
    model = GRU4Rec(layers=[8], n_epochs=1, batch_size=8, n_sample=0, seed=1).fit(events)
    with tracked_run("serving-test", tracking_uri=mlflow_uri):
        info = log_model(model, name="gru")
    served = mlflow.pyfunc.load_model(info.model_uri)
    session = pd.DataFrame({"session": [7, 7, 7], "item": [101, 105, 999]})
    got = served.predict(session, params={"n": 3})
    expected = model.recommend([[101, 105, 999]], 3)
    assert got["session"].tolist() == [7, 7, 7] and got["rank"].tolist() == [1, 2, 3]
    assert got["item"].tolist() == expected["item"].tolist()
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-6)
