"""What the ``tune`` steps of the tasks share: the search over copies of the train and valid data, the
best config written in the task's own schema, the test figures on the study's run, the typed result."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_recs.progress import Steps

from .base import Trained, note

#: The sections of a config that only ``tune`` reads; the best config leaves them out.
TUNE_SECTIONS = ("tune", "search_space")


@dataclass(frozen=True)
class Tuned:
    """What a ``tune`` step found: the best parameters and validation value, the study's MLflow run, the
    trials table, where the best config was written and, with ``train_best``, the final model and its
    test metrics."""

    best_params: dict
    best_value: float
    run_id: str
    trials: pd.DataFrame
    best_config: str
    trained: Trained | None = None
    test_metrics: dict | None = None


def without_search(config: dict, kind: str | None = None) -> dict:
    """A deep copy of ``config`` without what only ``tune`` reads (and its ``kind``, unless given): the
    start of a best config."""
    kept = {k: copy.deepcopy(v) for k, v in config.items() if k not in (*TUNE_SECTIONS, "kind")}
    return ({"kind": kind} if kind else {}) | kept


def space_shape(spec) -> None:
    """A ``search_space`` section's shape; the task's ``check_tune`` checks it against the searched model."""
    from spark_recs.core.params import ConfigError

    if not isinstance(spec, (list, dict)):
        raise ConfigError("search_space must map parameter names to {dtype, values, ...}, or list dimensions")


def settings_of(config: dict, experiment: str | None) -> dict:
    """The config's ``tune`` section, with the command line's ``experiment`` when given."""
    return config["tune"] | ({"experiment": experiment} if experiment else {})


def search_copies(
    spark: SparkSession,
    frames: dict[str, DataFrame],
    objective: Callable[[dict[str, str]], object],
    space,
    settings: dict,
    best_of: Callable[[dict], dict],
    steps: Steps,
    *,
    tracking_uri: str | None,
    tags: dict,
) -> tuple[Tuned, dict]:
    """Copy ``frames`` (train and valid) for the trial tasks, run the search of ``objective(paths)`` over
    ``space`` (its parent run tagged with ``tags``, the engine and the storage format), remove the copies,
    and write the best config, ``best_of(best parameters)``; returns what was found and that config."""
    from spark_recs.tracking import run_tags
    from spark_recs.tuning.search import remove_inputs, search, task_inputs

    with steps.step(f"Copy the {' and '.join(frames)} data for the trial tasks"):
        paths, folder = task_inputs(frames, settings["data_dir"])
    try:
        budget = f"{settings['n_trials']} trials" if settings["n_trials"] else f"{settings['timeout']:g}s"
        with steps.step(f"Search {space.names} ({settings['sampler']}, {budget}) for {settings['metric']}"):
            tags = run_tags(spark) | tags
            searched = search(spark, objective(paths), space, settings, tracking_uri=tracking_uri, tags=tags)
    finally:
        remove_inputs(folder)
    best = best_of(searched.best_params)
    path = write_best(best, settings, searched, steps)
    return Tuned(searched.best_params, searched.best_value, searched.run_id, searched.trials, str(path)), best


def write_best(best: dict, settings: dict, searched, steps: Steps) -> Path:
    """Write the best config to ``tune.best_config`` (default ``<work dir>/tuning/<study>.yaml``)."""
    import yaml

    from spark_recs.tuning.search import best_config_path

    path = best_config_path(settings)
    with steps.step(f"Write the best config to {path}"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(best, sort_keys=False))
        note(f"best {settings['metric']} {searched.best_value:.4f} on valid with {searched.best_params}")
    return path


def log_test_metrics(run_id: str, metrics: dict[str, float]) -> None:
    """The final model's test figures, ``test_<metric>``, on the study's parent run."""
    import mlflow

    from spark_recs.tracking import mlflow_key

    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(
        run_id,
        metrics=[mlflow.entities.Metric(mlflow_key(f"test_{k}"), v, now, 0) for k, v in metrics.items()],
    )
    note(", ".join(f"test {k} {v:.4f}" for k, v in metrics.items()))
