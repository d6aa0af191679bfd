"""What every MLflow experiment and run spark_recs creates carries: a model-training experiment kind (not
MLflow 3's inferred GenAI kind) and the package version that ran."""

from __future__ import annotations

import importlib.metadata

import mlflow

from spark_recs.tracking import KIND_TAG, MODEL_TRAINING, ensure_experiment, parent_run_id, tracked_run


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
