"""MLflow tracking: experiments and runs on the configured store (SQLite locally, Databricks there)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import mlflow

from spark_recs.runtime import configure_mlflow, on_databricks, work_dir


def ensure_experiment(name: str) -> str:
    """The id of experiment ``name``, created if missing (local artifacts under the work dir)."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if on_databricks() else (work_dir() / "mlartifacts" / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


@contextmanager
def tracked_run(
    experiment: str, run_name: str | None = None, *, tracking_uri: str | None = None, nested: bool = False
) -> Iterator[mlflow.ActiveRun]:
    """Start an MLflow run in ``experiment`` on ``tracking_uri`` (default: the project default)."""
    configure_mlflow(tracking_uri)
    experiment_id = ensure_experiment(experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested) as run:
        yield run
