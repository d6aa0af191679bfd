"""MLflow tracking: experiments and runs on the configured store (SQLite locally, Databricks there)."""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import re
import tempfile
import traceback
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import mlflow
from mlflow.exceptions import MlflowException

from spark_recs.runtime import configure_mlflow, is_connect, on_databricks, storage_format, work_dir
from spark_recs.serving.registry import log_model as log_model  # moved; kept here for the README's name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_BAD_KEY_CHARACTERS = re.compile(r"[^/\w.\- ]")
_MAX_PARAM_VALUE = 6000  # MLflow's limits on a param value, a tag value and a key
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250


#: The experiment tag MLflow 3's UI reads an experiment's kind from, and the kind of ours: model training
#: (not a GenAI application's, which the UI otherwise infers from runs without models).
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(name: str) -> str:
    """The id of experiment ``name``, created if missing (local artifacts under the work dir), marked as
    a model-training experiment (:data:`KIND_TAG`) unless it already has a kind."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if KIND_TAG not in found.tags:
            mlflow.MlflowClient().set_experiment_tag(found.experiment_id, KIND_TAG, MODEL_TRAINING)
        return found.experiment_id
    # A workspace path (/Users/someone/x) is a folder under the work dir too, never one from the root.
    inside = [part for part in PurePosixPath(name).parts if part not in ("/", "..")]
    location = None if on_databricks() else work_dir().joinpath("mlartifacts", *inside).as_uri()
    return mlflow.create_experiment(name, artifact_location=location, tags={KIND_TAG: MODEL_TRAINING})


def run_tags(spark: SparkSession | None = None, data: Mapping[str, object] | None = None) -> dict[str, str]:
    """The tags of every run spark_recs starts: the package version that ran it; with ``spark``, its Spark
    engine (``classic`` or ``connect``) and storage format; ``data``: the locations it reads and writes,
    as ``data.<name>`` (``None`` values left out)."""
    tags = {"spark_recs.version": importlib.metadata.version("spark_recs")}
    if spark is not None:
        tags["spark_recs.engine"] = "connect" if is_connect(spark) else "classic"
        tags["spark_recs.storage_format"] = storage_format(spark)
    return tags | {f"data.{name}": str(where) for name, where in (data or {}).items() if where is not None}


@contextmanager
def tracked_run(
    experiment: str,
    run_name: str | None = None,
    *,
    tracking_uri: str | None = None,
    nested: bool = False,
    spark: SparkSession | None = None,
    data: Mapping[str, object] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run in ``experiment`` on ``tracking_uri`` (default: the project default) for the block,
    tagged with :func:`run_tags` (``spark``, ``data``). Started first thing in a job, it spans the job:
    :class:`~spark_recs.progress.Steps` log each step's duration to it as the steps end. An exception
    ends it ``FAILED`` (``KILLED`` on an interrupt) with an ``error`` tag and ``traceback.txt``."""
    configure_mlflow(tracking_uri)
    experiment_id = ensure_experiment(experiment)
    tags = run_tags(spark, data)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested, tags=tags)
    try:
        yield run
    except BaseException as exc:
        status = "FAILED" if isinstance(exc, Exception) else "KILLED"
        try:
            fail_run(run.info.run_id, f"{type(exc).__name__}: {exc}", traceback.format_exc(), status=status)
        except Exception:  # the job's own error is the one to raise
            log.exception("could not record run %s as %s", run.info.run_id, status)
        raise
    mlflow.end_run()


# ---- runs shared across processes (e.g. the parent run of an evaluation fanned out to many jobs) -----


def parent_run_id(
    experiment: str,
    run_name: str,
    id_file: str | Path,
    *,
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The id of the run recorded in ``id_file``, creating the run (in ``experiment``) and the file if needed.

    Meant for a run many processes share: the first one creates it, the others (later calls, other jobs)
    read its id and resume it with :func:`resumed_run`. The file is claimed atomically (a hard link of a
    finished temporary file), so two processes racing to create it agree on one run; the loser deletes
    its own. An id that no longer names a live run on this tracking store (another store, a deleted run)
    is replaced, with a warning. The run is created finished; resuming it marks it running again.
    """
    configure_mlflow(tracking_uri)
    client = mlflow.MlflowClient()
    path = Path(id_file)
    stale = False
    if path.exists():
        run_id = path.read_text().strip()
        if is_live_run(client, run_id):
            return run_id
        log.warning(
            "%s names run %r, which this tracking store does not have: starting a new one", path, run_id
        )
        stale = True
    run = client.create_run(
        ensure_experiment(experiment), run_name=run_name, tags=run_tags() | dict(tags or {})
    )
    client.set_terminated(run.info.run_id)
    claimed = _claim_file(path, run.info.run_id, replace=stale)
    if claimed != run.info.run_id:
        client.delete_run(run.info.run_id)
    return claimed


def is_live_run(client, run_id: str | None) -> bool:
    """True when ``run_id`` names a run of this tracking store that is not deleted."""
    if not run_id:
        return False
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _claim_file(path: Path, content: str, *, replace: bool) -> str:
    """Write ``content`` to ``path`` unless another process got there first; returns what the file holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    partial.write_text(content)
    try:
        if replace:
            os.replace(partial, path)
            return content
        try:
            os.link(partial, path)
        except FileExistsError:
            return path.read_text().strip()
        except OSError:  # a file system without hard links: an exclusive create instead
            try:
                with path.open("x") as out:
                    out.write(content)
            except FileExistsError:
                return path.read_text().strip()
        return content
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def resumed_run(run_id: str, *, tracking_uri: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """Resume run ``run_id`` as the active run (nested under the caller's active run, if there is one)."""
    configure_mlflow(tracking_uri)
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None) as run:
        yield run


def start_child_run(run_name: str, *, tags: Mapping[str, str] | None = None) -> mlflow.ActiveRun:
    """Start a run nested under the active run, in the active run's experiment; end it with
    ``mlflow.end_run`` (or :func:`fail_run`)."""
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("start_child_run needs an active parent run")
    return mlflow.start_run(
        experiment_id=parent.info.experiment_id, run_name=run_name, nested=True, tags=dict(tags or {})
    )


def kill_stale_children(
    parent_id: str, tag: str, values: Collection[str], started_before: float
) -> list[str]:
    """End as ``KILLED`` the runs nested under ``parent_id`` that are still ``RUNNING``, started before
    ``started_before`` (seconds since the epoch) and have ``tag`` set to one of ``values``: what a killed
    process leaves, as it cannot end its runs. Returns their ids.

    The caller vouches that no live process still runs those ``values``: one that started them before
    ``started_before`` cannot be told apart from a dead one.
    """
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_id).info.experiment_id
    query = f"tags.mlflow.parentRunId = '{parent_id}' AND attributes.status = 'RUNNING'"
    stale, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        stale += [
            run.info.run_id
            for run in page
            if run.data.tags.get(tag) in values and run.info.start_time < started_before * 1000
        ]
        token = page.token
        if not token:
            break
    for run_id in stale:
        log.warning(
            "MLflow run %s was left RUNNING by a process that ended without closing it: KILLED", run_id
        )
        fail_run(run_id, "the process running it ended before recording a result (killed?)", status="KILLED")
    return stale


def fail_run(run_id: str, error: str, traceback_text: str | None = None, *, status: str = "FAILED") -> None:
    """End run ``run_id`` with ``status`` (``FAILED``, ``KILLED``) and its ``error`` tag set (plus the
    traceback as the artifact ``traceback.txt`` when given). When it is the active run it is also popped
    from the active-run stack, so its parent becomes active again."""
    client = mlflow.MlflowClient()
    try:
        client.set_tag(run_id, "error", error[:_MAX_TAG_VALUE])
        if traceback_text:
            client.log_text(run_id, traceback_text, "traceback.txt")
    finally:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status=status)
        else:
            client.set_terminated(run_id, status=status)


# ---- logging values MLflow would refuse as they are -------------------------------------------------


def mlflow_key(name: str) -> str:
    """``name`` as a valid MLflow param/metric key: ``@`` becomes ``_at_`` (``ndcg@10`` -> ``ndcg_at_10``),
    other characters MLflow refuses become ``_``."""
    return _BAD_KEY_CHARACTERS.sub("_", str(name).replace("@", "_at_"))[:_MAX_KEY]


def log_params_flat(params: Mapping[str, object], prefix: str = "") -> None:
    """Log ``params`` to the active run: keys made valid (:func:`mlflow_key`) and prefixed, values as
    strings cut to MLflow's length limit; ``None`` values are skipped."""
    clean = {
        mlflow_key(prefix + str(key)): str(value)[:_MAX_PARAM_VALUE]
        for key, value in params.items()
        if value is not None
    }
    if clean:
        mlflow.log_params(clean)


def log_metrics_clean(metrics: Mapping[str, object]) -> None:
    """Log the numeric entries of ``metrics`` to the active run (keys made valid; ``None``, infinities and
    non-numbers skipped; NaN is logged as NaN)."""
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isinf(number):
            clean[mlflow_key(key)] = number
    if clean:
        mlflow.log_metrics(clean)


def log_frame(frame, artifact_file: str) -> None:
    """Log a pandas DataFrame to the active run as the CSV artifact ``artifact_file`` (``dir/name.csv``)."""
    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="spark_recs_frame_") as scratch:
        local = Path(scratch) / name
        frame.to_csv(local, index=False)
        mlflow.log_artifact(str(local), artifact_path=folder or None)
