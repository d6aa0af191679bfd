"""Getting a fitted model to Spark's Python workers, on classic Spark and on Spark Connect alike.

Classic Spark: the bytes of the saved model file go through ``sc.broadcast``. Spark Connect (no
``sparkContext``): workers read a model file by path, so an in-memory model is first saved under
``model_dir`` (default: the local work dir; on a remote cluster use a Volume path). Either way each
Python worker restores the model once (``weights_only``) and keeps it for later tasks.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from spark_recs.models.base import Model, Payload
from spark_recs.runtime import is_connect, work_dir

from .references import URI, LoadedModel, TrainedModel, model_file

ModelRef = Model | Payload | str | Path | TrainedModel | LoadedModel

_worker_models: OrderedDict[str, Model] = OrderedDict()  # per Python worker, kept between tasks


def _cached_model(key: str, restore: Callable[[], Model]) -> Model:
    model = _worker_models.get(key)
    if model is None:
        model = restore()
        _worker_models[key] = model
        while len(_worker_models) > 2:
            _worker_models.popitem(last=False)
    return model


def _local_file(algo: ModelRef) -> Path | None:
    """The saved file a reference names, shipped as it is; ``None`` when the model must be serialised."""
    if isinstance(algo, TrainedModel):
        return algo.path
    if isinstance(algo, LoadedModel):
        return algo.file
    if isinstance(algo, (str, Path)) and not URI.match(str(algo)):
        return model_file(algo)
    return None


def ship(algo: ModelRef, model: Model, spark: SparkSession, model_dir: str | None) -> Callable[[], Model]:
    """A function that returns the model inside a worker (restored once per Python worker).

    ``model`` is ``algo`` loaded on the driver. A local model file is shipped as it is (its path on
    Connect, its bytes on classic Spark); an in-memory model or an MLflow download is serialised, and on
    Connect saved under ``model_dir`` first.
    """
    # The closures carry the class: unpickling it in the worker imports the user's own model module, so a
    # file's kind resolves there without importing anything the file names.
    model_cls = type(model)
    local = _local_file(algo)
    if is_connect(spark):
        if local is not None:
            path = local
        else:
            data = model.payload().data
            folder = Path(model_dir) if model_dir else work_dir() / "models"
            path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}.pt"
            if not path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                partial.write_bytes(data)
                os.replace(partial, path)
        stat = path.stat()
        key, location = f"{path}:{stat.st_mtime_ns}:{stat.st_size}", str(path)
        return lambda: _cached_model(key, lambda: model_cls.load(location, device="cpu"))
    data = local.read_bytes() if local is not None else model.payload().data
    key = hashlib.sha256(data).hexdigest()
    shared = spark.sparkContext.broadcast(data)
    return lambda: _cached_model(key, lambda: model_cls.load(io.BytesIO(shared.value), device="cpu"))


def task_threads(spark: SparkSession, num_threads: int | None) -> int:
    """``num_threads`` if given, else ``spark.task.cpus`` (what Spark sets OMP_NUM_THREADS to)."""
    if num_threads:
        return int(num_threads)
    try:
        return int(spark.conf.get("spark.task.cpus", "1") or 1)
    except Exception:  # some Connect servers do not expose every setting
        return 1
