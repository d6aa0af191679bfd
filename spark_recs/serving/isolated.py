"""Training a model in a child process (``python -m spark_recs.serving.isolated SPEC``), so that the
parent never holds the trained model and training memory is released when the child exits."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame

from spark_recs.models.base import Model, import_model_class, model_kind

from .references import MODEL_FILE, TrainedModel


def train_isolated(algo: Model, ratings, *, file: str | Path | None = None, **fit_kwargs) -> TrainedModel:
    """Fit ``algo`` on ``ratings`` in a child process and save it to ``file`` (default: a temporary file).

    The returned :class:`TrainedModel` is accepted by ``batch.recommend``, ``batch.predict`` and
    ``batch.recommend_sessions``. ``ratings``: a pandas or Spark DataFrame, or a Parquet path; it reaches
    the child as a Parquet file. ``fit_kwargs`` (JSON values) are passed to ``fit``. The child imports
    ``algo``'s class from its module (with this process's ``sys.path``), so a class of the caller's own
    must live in an importable module, not in ``__main__`` or inside a function.
    """
    if not isinstance(algo, Model):
        raise TypeError(f"train_isolated needs an unfitted spark_recs Model, got {type(algo).__name__}")
    kind = model_kind(type(algo))
    if kind.startswith("__main__:") or "<locals>" in kind:
        raise ValueError(
            f"train_isolated cannot train {kind}: the child process imports the model class, so define it "
            "in an importable module (not in __main__ or inside a function)"
        )
    target = Path(file) if file else Path(tempfile.mkdtemp(prefix="spark_recs_trained_")) / MODEL_FILE
    with tempfile.TemporaryDirectory(prefix="spark_recs_ratings_") as scratch:
        spec = {
            "kind": kind,
            "path": [str(p) for p in sys.path],
            "params": algo.get_params(),
            "data": str(_ratings_file(ratings, Path(scratch))),
            "target": str(target),
            "fit_kwargs": fit_kwargs,
        }
        (Path(scratch) / "spec.json").write_text(json.dumps(spec))
        # A fresh interpreter, not fork (the parent holds a JVM and thread pools) and not spawn (which
        # re-imports the caller's main module).
        done = subprocess.run(
            [sys.executable, "-m", "spark_recs.serving.isolated", str(Path(scratch) / "spec.json")]
        )
    if done.returncode != 0 or not target.exists():
        raise RuntimeError(
            f"training {kind} in a child process failed (exit code {done.returncode}); see its output"
        )
    return TrainedModel(target, kind)


def _ratings_file(ratings, folder: Path) -> Path:
    if isinstance(ratings, (str, Path)):
        return Path(ratings)
    path = folder / "ratings.parquet"
    (ratings.toPandas() if isinstance(ratings, DataFrame) else ratings).to_parquet(path)
    return path


def _train_child(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    sys.path[:0] = [p for p in spec["path"] if p not in sys.path]
    # The parent wrote this spec for a class it holds: importing the class's module is intended here.
    model = import_model_class(spec["kind"])(**spec["params"])
    model.fit(pd.read_parquet(spec["data"]), **spec["fit_kwargs"])
    model.save(spec["target"])


if __name__ == "__main__":
    _train_child(sys.argv[1])
