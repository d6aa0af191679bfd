"""Model references: the cheap argument check, and a reference read once (a local file then travels to the
workers as it is; an MLflow download is not repeated)."""

import mlflow
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from spark_recs import batch
from spark_recs.models.popular import Popular
from spark_recs.runtime import is_connect
from spark_recs.serving.references import check_model, load_model, load_reference
from spark_recs.serving.registry import log_and_register
from spark_recs.tracking import tracked_run

RATINGS = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 3, 4], "item": [10, 20, 10, 30, 10, 20, 40, 50]})


def _top(frame: pd.DataFrame) -> list:
    return frame.sort_values(["user", "rank"])[["user", "item"]].to_numpy().tolist()


def test_check_model_needs_no_mlflow_for_a_uri_and_names_a_missing_file(tmp_path):
    check_model("models:/not-looked-up@champion")
    with pytest.raises(FileNotFoundError, match="no model at .*missing.pt: expected a file written by Model"):
        check_model(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="holds no model.pt"):
        check_model(tmp_path)


def test_a_local_file_is_read_once_and_shipped_as_it_is(any_spark, tmp_path):
    model = Popular().fit(RATINGS)
    path = model.save(tmp_path / "saved" / "model.pt")
    handle = load_reference(tmp_path / "saved")  # a folder holding one model.pt
    assert handle.file == path and torch.equal(handle.model.counts, model.counts)
    shipped_copies = tmp_path / "copies"
    got = batch.recommend(handle, [1, 4], 2, spark=any_spark, model_dir=str(shipped_copies)).toPandas()
    assert _top(got) == [[1, 30], [1, 40], [4, 10], [4, 20]]
    assert not shipped_copies.exists()  # the workers read the file itself
    # The same model in memory is written out first on Connect (where workers read files), unlike the file.
    batch.recommend(handle.model, [1], 2, spark=any_spark, model_dir=str(shipped_copies))
    assert shipped_copies.exists() == is_connect(any_spark)


def test_a_registered_model_is_downloaded_once(any_spark, mlflow_uri):
    with tracked_run("references-test"):
        log_and_register(Popular().fit(RATINGS), registered_model="refs-popular", alias="champion")
    handle = load_reference("models:/refs-popular@champion", mlflow_uri)
    assert handle.file is None
    mlflow.MlflowClient().delete_registered_model("refs-popular")
    with pytest.raises(MlflowException):
        load_model("models:/refs-popular@champion")
    # batch scores the model already read: it does not ask the registry again.
    got = batch.recommend(handle, [2], 2, spark=any_spark).toPandas()
    assert _top(got) == [[2, 20], [2, 40]]


def test_an_unknown_registered_model_is_one_line_naming_the_store(mlflow_uri):
    with pytest.raises(ValueError) as error:
        load_reference("models:/no-such-model@champion", mlflow_uri)
    message = str(error.value)
    assert message.startswith(
        f"cannot load model models:/no-such-model@champion from the MLflow store {mlflow_uri}: "
    )
    assert "\n" not in message and message.endswith("--tracking-uri")
