"""What every MLflow experiment and run spark_recs creates carries: a model-training experiment kind (not
MLflow 3's inferred GenAI kind), the package version, the Spark engine, storage format and data locations,
the duration of each step, and, when the job fails, the status FAILED with the error."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import mlflow
import pytest

from spark_recs import tasks
from spark_recs.config import load_config
from spark_recs.progress import Steps
from spark_recs.runtime import is_connect
from spark_recs.tracking import KIND_TAG, MODEL_TRAINING, ensure_experiment, parent_run_id, tracked_run

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_a_new_or_untagged_experiment_is_a_model_training_one_and_runs_carry_the_version(
    mlflow_uri, tmp_path
):
    version = importlib.metadata.version("spark_recs")
    with tracked_run("fresh", "a-run") as run:
        pass
    experiment = mlflow.get_experiment_by_name("fresh")
    assert experiment.tags[KIND_TAG] == MODEL_TRAINING == "custom_model_development"
    assert mlflow.get_run(run.info.run_id).data.tags["spark_recs.version"] == version

    untagged = mlflow.create_experiment("made-elsewhere")
    assert ensure_experiment("made-elsewhere") == untagged
    assert mlflow.get_experiment(untagged).tags[KIND_TAG] == MODEL_TRAINING
    genai = mlflow.create_experiment("an-app", tags={KIND_TAG: "genai_development"})
    ensure_experiment("an-app")  # a kind someone chose is kept
    assert mlflow.get_experiment(genai).tags[KIND_TAG] == "genai_development"

    shared = parent_run_id("fresh", "parent", tmp_path / "parent.txt")
    assert mlflow.get_run(shared).data.tags["spark_recs.version"] == version


def test_a_workspace_path_experiment_keeps_its_artifacts_under_the_work_dir(mlflow_uri, work_dir):
    """A Databricks-style name (/Users/someone/x, the bundle's experiment) once put them under /Users."""
    created = mlflow.get_experiment(ensure_experiment("/Users/someone@example.com/../spark_recs-dev"))
    expected = work_dir / "mlartifacts" / "Users" / "someone@example.com" / "spark_recs-dev"
    assert created.artifact_location == expected.as_uri()


def test_a_failing_job_ends_its_run_failed_with_the_error_and_an_interrupt_killed(mlflow_uri):
    with tracked_run("jobs", "outer") as outer:
        with pytest.raises(ValueError, match="no rows"):
            with tracked_run("jobs", "inner", nested=True) as inner:
                raise ValueError("no rows")
        assert mlflow.active_run().info.run_id == outer.info.run_id  # the parent is still the active run
    with pytest.raises(KeyboardInterrupt):
        with tracked_run("jobs", "stopped") as stopped:
            raise KeyboardInterrupt
    client = mlflow.MlflowClient()
    failed = client.get_run(inner.info.run_id)
    assert failed.info.status == "FAILED" and failed.data.tags["error"] == "ValueError: no rows"
    assert "raise ValueError" in mlflow.artifacts.load_text(f"runs:/{inner.info.run_id}/traceback.txt")
    assert client.get_run(outer.info.run_id).info.status == "FINISHED"
    assert client.get_run(stopped.info.run_id).info.status == "KILLED"


def test_a_run_that_cannot_be_marked_failed_still_raises_the_jobs_own_error(mlflow_uri):
    """Recording the failure once replaced the job's error with the tracking store's."""
    with pytest.raises(ValueError, match="the job's error"):
        with tracked_run("jobs", "deleted-meanwhile") as run:
            mlflow.MlflowClient().delete_run(run.info.run_id)  # the store now refuses to update it
            raise ValueError("the job's error")


def test_named_steps_log_their_duration_to_the_active_run(mlflow_uri, capsys):
    steps = Steps(2)
    with steps.step("outside any run", "before"):  # no run: printed only
        pass
    with tracked_run("jobs", "steps") as run:
        with steps.step("wait a little", "wait"):
            time.sleep(0.05)
    metrics = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert set(metrics) == {"wait_seconds"} and metrics["wait_seconds"] >= 0.05
    assert "[2/2] wait a little: done in" in capsys.readouterr().err


def test_runs_carry_the_engine_the_storage_format_and_the_data_locations(any_spark, mlflow_uri):
    engine = "connect" if is_connect(any_spark) else "classic"
    fmt = {"classic": "parquet", "connect": "delta"}[engine]  # no Delta jars locally; pysail writes Delta
    data = {"input": "main.recs.clicks", "model": None}
    with tracked_run("jobs", "tagged", spark=any_spark, data=data) as run:
        pass
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["spark_recs.engine"] == engine and tags["spark_recs.storage_format"] == fmt
    assert tags["data.input"] == "main.recs.clicks" and "data.model" not in tags


def test_a_training_job_that_fails_leaves_a_failed_run_naming_the_error(spark, mlflow_uri, tmp_path):
    """The run starts with the job, so a failure while loading its data is in MLflow too."""
    config = load_config(CONF / "example.yaml")
    with pytest.raises(FileNotFoundError) as raised:
        tasks.run("train", spark, config, str(tmp_path / "nothing-prepared"), experiment="failing")
    (run,) = mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name("failing").experiment_id])
    assert run.info.status == "FAILED" and run.info.run_name == "train-gru4rec"
    assert run.data.tags["error"] == f"FileNotFoundError: {raised.value}"
    assert run.data.tags["data.input"] == str(tmp_path / "nothing-prepared")
