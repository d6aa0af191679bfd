"""Model references: a fitted model, a saved file, an MLflow model URI, or what ``train_isolated`` returns."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spark_recs.models.base import Model, Payload
from spark_recs.runtime import configure_mlflow, default_tracking_uri

MODEL_FILE = "model.pt"
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # models:/, runs:/, dbfs:/, s3://, ...


@dataclass(frozen=True)
class TrainedModel:
    """A model trained and saved by ``train_isolated``: a file the parent process never loaded."""

    path: Path
    kind: str

    def load(self) -> Model:
        return Model.load(self.path)


@dataclass(frozen=True)
class LoadedModel:
    """A model read once from a reference by :func:`load_reference`, with the local file it came from
    (``None`` for an MLflow download): batch ships that file as it is and never reads the reference again."""

    model: Model
    file: Path | None = None


def model_file(reference: str | Path | TrainedModel) -> Path:
    """The local model file a path reference points to (a file, or a folder holding one ``model.pt``)."""
    if isinstance(reference, TrainedModel):
        return reference.path
    path = Path(reference)
    if path.is_dir():
        found = sorted(path.rglob(MODEL_FILE))
        if not found:
            raise FileNotFoundError(f"{path} holds no {MODEL_FILE}: not a spark_recs model folder")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(
            f"no model at {reference}: expected a file written by Model.save or an MLflow URI"
        )
    return path


def load_model(algo: Model | Payload | str | Path | TrainedModel | LoadedModel) -> Model:
    """The fitted model behind any reference, restored on the CPU. An MLflow URI (``models:/name@alias``,
    ``runs:/id/model``) is downloaded to a temporary folder, loaded and the copy removed."""
    if isinstance(algo, Model):
        return algo
    if isinstance(algo, LoadedModel):
        return algo.model
    if isinstance(algo, Payload):
        return algo.restore(device="cpu")
    if isinstance(algo, str) and URI.match(algo):
        import mlflow

        with tempfile.TemporaryDirectory(prefix="spark_recs_model_") as folder:
            local = mlflow.artifacts.download_artifacts(artifact_uri=algo, dst_path=folder)
            return Model.load(model_file(local), device="cpu")
    return Model.load(model_file(algo), device="cpu")


def check_model(reference: str | Path) -> None:
    """Raise ``FileNotFoundError`` when ``reference`` is neither an MLflow/remote URI nor a local model file
    (cheap: needs no Spark and no MLflow, so the CLI checks its arguments before starting either)."""
    if not URI.match(str(reference)):
        model_file(reference)


def load_reference(reference: str | Path, tracking_uri: str | None = None) -> LoadedModel:
    """The model behind a path or an MLflow URI (``models:/name@alias``, ``runs:/id/model``; read from
    ``tracking_uri``, default the project's store), read once. An MLflow error is a one-line
    ``ValueError`` naming the store and the fix."""
    if not URI.match(str(reference)):
        path = model_file(reference)
        return LoadedModel(Model.load(path, device="cpu"), path)
    from mlflow.exceptions import MlflowException

    configure_mlflow(tracking_uri)
    try:
        return LoadedModel(load_model(str(reference)))
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        store = tracking_uri or default_tracking_uri()
        raise ValueError(
            f"cannot load model {reference} from the MLflow store {store}: {first}; check the name, "
            "version or alias (spark-recs train --register-as NAME --alias ALIAS) and --tracking-uri"
        ) from None
