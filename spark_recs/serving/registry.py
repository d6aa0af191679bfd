"""Logging a fitted model to MLflow and registering it: what every trainer ends with."""

from __future__ import annotations

import importlib.metadata
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, DataType, Schema

from spark_recs.models.base import Model, Recommender
from spark_recs.models.serving import input_example, serve
from spark_recs.runtime import on_databricks

from .references import MODEL_FILE

_PACKAGE = Path(__file__).parents[1]
#: The "models from code" file MLflow runs to load a logged model (it sets :class:`SparkRecsPyfunc`).
_MODEL_CODE = _PACKAGE / "mlflow_pyfunc.py"


@dataclass(frozen=True)
class Registration:
    """Where :func:`log_and_register` put a model: the URI to load it with and its registered version."""

    uri: str
    version: str | None


def log_and_register(
    model: Model, *, name: str = "model", registered_model: str | None = None, alias: str | None = None
) -> Registration:
    """Log ``model`` to the active MLflow run as ``name``, register it as ``registered_model`` (when given)
    and give the new version ``alias``; return the URI to load it with: ``models:/<registered>@<alias>``,
    else ``models:/<registered>/<version>``, else the logged model's own URI (``alias`` needs a name)."""
    aliases = (alias,) if registered_model and alias else ()
    info = log_model(model, name, registered_model_name=registered_model, aliases=aliases)
    version = info.registered_model_version
    if not registered_model:
        uri = info.model_uri
    elif alias:
        uri = f"models:/{registered_model}@{alias}"
    else:
        uri = f"models:/{registered_model}/{version}"
    return Registration(uri, None if version is None else str(version))


def log_model(
    model: Model, name: str = "model", registered_model_name: str | None = None, aliases: Sequence[str] = ()
):
    """Log a fitted model to the active MLflow run (and register it when ``registered_model_name``, giving
    the new version each of ``aliases``, e.g. ``("challenger",)``, so ``models:/<name>@challenger`` finds it).

    The artifact is the model's saved file plus :mod:`spark_recs.mlflow_pyfunc` as "models from code"
    (nothing pickled), with an input example and a signature (inputs, outputs and the ``n`` param) derived
    from the model. ``spark_recs.batch`` accepts the resulting ``models:/<name>/<version>`` or
    ``runs:/<run id>/<name>`` URI. On Databricks the registry is Unity Catalog: ``registered_model_name``
    must be ``catalog.schema.model``. Returns MLflow's ``ModelInfo``.
    """
    if aliases and not registered_model_name:
        raise ValueError("aliases need a registered_model_name")
    if registered_model_name and on_databricks() and registered_model_name.count(".") != 2:
        raise ValueError(
            f"Unity Catalog model names are catalog.schema.model, got {registered_model_name!r}: "
            f"use e.g. main.recs.{registered_model_name}"
        )
    example = input_example(model)
    with tempfile.TemporaryDirectory(prefix="spark_recs_log_") as scratch:
        path = model.save(Path(scratch) / MODEL_FILE)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(_MODEL_CODE),
            artifacts={"model": str(path)},
            code_paths=[str(_PACKAGE)],
            pip_requirements=[f"torch=={_version('torch')}", f"pandas=={_version('pandas')}", "numpy"],
            registered_model_name=registered_model_name,
            signature=_signature(model, example),
            input_example=example,
        )
    for alias in aliases:
        mlflow.MlflowClient().set_registered_model_alias(
            registered_model_name, alias, info.registered_model_version
        )
    return info


def _signature(model: Model, example) -> ModelSignature:
    """Inputs and outputs inferred from the example; a user model's ``item`` input is optional (pairs)."""
    with warnings.catch_warnings():  # ids are validated and never missing: MLflow's int-column hint is noise
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(example, serve(model, example), params={"n": 10})
    if isinstance(model, Recommender) and "item" not in example:
        item_type = DataType.long if model.item_vocab.is_integer else DataType.string
        signature.inputs = Schema([*signature.inputs.inputs, ColSpec(item_type, "item", required=False)])
    return signature


def _version(package: str) -> str:
    return importlib.metadata.version(package)
