"""Model references: a fitted model, a saved file, an MLflow model URI, or what ``train_isolated`` returns."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .base import Model, Payload

MODEL_FILE = "model.pt"
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # models:/, runs:/, dbfs:/, s3://, ...


@dataclass(frozen=True)
class TrainedModel:
    """A model trained and saved by ``batch.train_isolated``: a file the parent process never loaded."""

    path: Path
    kind: str

    def load(self) -> Model:
        return Model.load(self.path)


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


def load_model(algo: Model | Payload | str | Path | TrainedModel) -> Model:
    """The fitted model behind any reference, restored on the CPU. An MLflow URI (``models:/name@alias``,
    ``runs:/id/model``) is downloaded to a temporary folder, loaded and the copy removed."""
    if isinstance(algo, Model):
        return algo
    if isinstance(algo, Payload):
        return algo.restore(device="cpu")
    if isinstance(algo, str) and URI.match(algo):
        import mlflow

        with tempfile.TemporaryDirectory(prefix="spark_recs_model_") as folder:
            local = mlflow.artifacts.download_artifacts(artifact_uri=algo, dst_path=folder)
            return Model.load(model_file(local), device="cpu")
    return Model.load(model_file(algo), device="cpu")
