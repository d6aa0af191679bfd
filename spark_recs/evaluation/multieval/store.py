"""The restartable on-disk store of a MultiEval: a record and outputs per run, read back as tables.

**On disk** (``path``)::

    runs/run-<RunId>.json             one record per run (written last, atomically); status ok / failed
    runs.csv                          the records as a table, rebuilt after each run (atomically)
    recommendations/RunId=<id>/       Parquet: user, rank, item, score (read the folder: RunId column)
    predictions/RunId=<id>/           Parquet: the test rows plus prediction
    user_metrics/run-<RunId>.csv      per test user: user, nrecs, ntruth and the top-N metrics
    models/run-<RunId>.pt             the fitted model (save_models=True)
    plots/<metric>.png                one bar chart per metric (mean over partitions, std error bars)
    data/<DataSet>/<Partition>/{train,test}   Parquet, after persist_data()
    mlflow_parent_run.txt             the id of the MLflow parent run

**Restarts.** A run whose record says ``ok`` is never run again; a failed run is retried. A run killed
half-way leaves no record, so the next ``run`` removes what it left (Parquet staging folders
``.RunId=<id>.writing-*``, outputs of runs without an ok record) before running it again. With
``runs=None`` every run's leftovers are removed; with a list only those runs' (so jobs running other runs
at the same time are left alone).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_recs.data import versioned
from spark_recs.data.io import write_table
from spark_recs.evaluation.multieval.plan import KEY_COLUMNS, DataSet, plain, session, to_spark

log = logging.getLogger(__name__)

TIME_COLUMNS = ("TrainTime", "PredTime", "RecTime")
STATUS_COLUMNS = ("status", "error")
PREDICTION_METRICS = ("rmse", "mae", "user_rmse", "user_mae")
COUNTS = ("n_test_users", "n_users_with_recs", "n_pred_missing")
RUN_ID_COLUMN = "MLflowRunId"

_TABLE_ENTRY = re.compile(r"^(?P<hidden>\.)?RunId=(?P<id>\d+)(?P<rest>\..*)?$")
_FILE_ENTRY = re.compile(r"^(?P<hidden>\.)?run-(?P<id>\d+)\.(?P<ext>pt|csv|json)(?P<rest>\..*)?$")
_FILE_FOLDERS = {"models": "pt", "user_metrics": "csv", "runs": "json"}


class Store:
    """The evaluation folder ``path`` (created); ``metrics``: the top-N metric names, in runs-table order."""

    def __init__(self, path, metrics: Sequence[str], spark: SparkSession | None = None) -> None:
        self.path = Path(path).absolute()
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics = [*metrics, *PREDICTION_METRICS]
        self.spark = spark
        #: The runs-table columns the store itself fills (not for algorithms' or data sets' columns).
        self.columns = {*KEY_COLUMNS, *TIME_COLUMNS, *STATUS_COLUMNS, RUN_ID_COLUMN, *self.metrics, *COUNTS}

    def output(self, table: str, run_id: int) -> Path:
        """The Parquet folder of a run's ``recommendations`` or ``predictions``."""
        return self.path / table / f"RunId={run_id}"

    def run_file(self, folder: str, run_id: int) -> Path:
        """A run's file in ``runs``, ``user_metrics`` or ``models``."""
        return self.path / folder / f"run-{run_id}.{_FILE_FOLDERS[folder]}"

    def write_user_metrics(self, run_id: int, per_user: pd.DataFrame) -> None:
        _write_text(self.run_file("user_metrics", run_id), per_user.to_csv(index=False))

    def write_record(self, record: dict) -> None:
        """Write a run's record (last, so a record means the run's outputs are complete)."""
        values = {key: plain(value) for key, value in record.items()}
        values = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
        _write_text(self.run_file("runs", record["RunId"]), json.dumps(values, indent=1))

    def records(self) -> dict[int, dict]:
        """Every run's record, by RunId."""
        records = {}
        for file in sorted((self.path / "runs").glob("run-*.json")):
            match = _FILE_ENTRY.match(file.name)
            if match and not match["hidden"] and not match["rest"]:
                records[int(match["id"])] = json.loads(file.read_text())
        return records

    def ok_ids(self) -> set[int]:
        return {run_id for run_id, record in self.records().items() if record.get("status") == "ok"}

    def remove_outputs(self, scope: Collection[int] | None, ok: Collection[int] | None = None) -> None:
        """Remove the per-run outputs of the runs in ``scope`` (``None``: all). With ``ok`` (the runs
        recorded ok), only leftovers: staging/partial entries and outputs of runs not in ``ok``."""
        entries = []  # (run id, hidden or partial, path)
        for table in ("recommendations", "predictions"):
            if (self.path / table).is_dir():
                for entry in (self.path / table).iterdir():
                    # A version folder of a local Parquet output (data/versioned.py) belongs to its RunId.
                    match = _TABLE_ENTRY.match(versioned.base_of(entry).name)
                    if match:
                        entries.append((int(match["id"]), bool(match["hidden"] or match["rest"]), entry))
        for name, ext in _FILE_FOLDERS.items():
            if (self.path / name).is_dir():
                for entry in (self.path / name).iterdir():
                    match = _FILE_ENTRY.match(entry.name)
                    if match and match["ext"] == ext:
                        partial = bool(match["hidden"] or match["rest"])
                        if name != "runs" or partial:  # records themselves are not leftovers
                            entries.append((int(match["id"]), partial, entry))
        for run_id, partial, entry in entries:
            if (scope is None or run_id in scope) and (ok is None or partial or run_id not in ok):
                if ok is not None:
                    log.warning("removing %s, left by an unfinished run %d", entry, run_id)
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def results(self) -> pd.DataFrame:
        """The runs table (see :meth:`MultiEval.collect_results`)."""
        records = self.records()
        rows = [{k: v for k, v in records[i].items() if not k.startswith("_")} for i in sorted(records)]
        if not rows:
            return pd.DataFrame(columns=[*KEY_COLUMNS, *TIME_COLUMNS, *STATUS_COLUMNS, RUN_ID_COLUMN])
        table = pd.DataFrame(rows)
        tail = [c for c in [*TIME_COLUMNS, *STATUS_COLUMNS, *self.metrics, *COUNTS] if c in table.columns]
        head = [c for c in KEY_COLUMNS if c in table.columns]
        middle = [c for c in table.columns if c not in {*head, *tail, RUN_ID_COLUMN}]
        for count in COUNTS:
            if count in table.columns:
                table[count] = table[count].astype("Int64")
        return table[head + middle + tail + [RUN_ID_COLUMN]]

    def write_runs_csv(self) -> Path:
        """Rebuild ``runs.csv`` from the records; returns its path."""
        target = self.path / "runs.csv"
        _write_text(target, self.results().to_csv(index=False))
        return target

    def table(self, name: str) -> SparkDataFrame:
        """Every ok run's ``recommendations`` or ``predictions`` with their ``RunId`` (Spark, lazy)."""
        folder = self.path / name
        if not folder.is_dir() or not any(_TABLE_ENTRY.match(e.name) for e in folder.iterdir()):
            raise FileNotFoundError(f"no {name} in {self.path}: run the evaluation first")
        ok = sorted(self.ok_ids())
        return session(self.spark).read.parquet(str(folder)).where(F.col("RunId").isin(ok))

    def persist(self, datasets: list[DataSet], overwrite: bool = False) -> None:
        """See :meth:`MultiEval.persist_data`."""
        for ds in datasets:
            folder = self.path / "data" / ds.name
            manifest = folder / "_manifest.json"
            if manifest.exists() and not overwrite:
                count = int(json.loads(manifest.read_text())["partitions"])
                log.info("data set %s: reusing %d persisted partitions in %s", ds.name, count, folder)
            else:
                pairs = ds.partitions()
                for number, (train, test) in enumerate(pairs, 1):
                    for side, frame in (("train", train), ("test", test)):
                        frame = to_spark(frame, session(self.spark, frame))
                        write_table(frame, str(folder / str(number) / side), format="parquet")
                count = len(pairs)
                _write_text(manifest, json.dumps({"name": ds.name, "partitions": count}))
                log.info("data set %s: persisted %d partitions to %s", ds.name, count, folder)
            ds.pairs = [
                (str(folder / str(p) / "train"), str(folder / str(p) / "test")) for p in range(1, count + 1)
            ]


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """A hidden temporary path beside ``path`` to write to, moved onto ``path`` (``os.replace``, atomic) when
    the block succeeds and removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    with replaced(path) as partial:
        partial.write_text(text)
