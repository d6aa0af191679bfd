"""MLflow tracking: experiments and runs on the configured store (SQLite locally, Databricks there)."""

from __future__ import annotations

import importlib.metadata
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec

from spark_recs.models.base import Model
from spark_recs.models.references import MODEL_FILE
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


def log_model(model: Model, name: str = "model", registered_model_name: str | None = None):
    """Log a fitted model to the active MLflow run (and register it when ``registered_model_name``).

    The artifact is the model's saved file plus :mod:`spark_recs.mlflow_pyfunc` as "models from code"
    (nothing pickled). ``spark_recs.batch`` accepts the resulting ``models:/<name>/<version>`` or
    ``runs:/<run id>/<name>`` URI. Returns MLflow's ``ModelInfo``.
    """
    with tempfile.TemporaryDirectory(prefix="spark_recs_log_") as scratch:
        path = model.save(Path(scratch) / MODEL_FILE)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("mlflow_pyfunc.py")),
            artifacts={"model": str(path)},
            code_paths=[str(Path(__file__).parent)],
            pip_requirements=[f"torch=={_version('torch')}", f"pandas=={_version('pandas')}", "numpy"],
            registered_model_name=registered_model_name,
            signature=ModelSignature(params=ParamSchema([ParamSpec("n", "long", 10)])),
        )


def _version(package: str) -> str:
    return importlib.metadata.version(package)
