"""LensKit's ``MultiEval`` over Spark: many algorithms on many data sets, every run kept on disk and in MLflow.

Usage, as in LensKit::

    from spark_recs.data.split import SampleN, partition_users
    from spark_recs.evaluation import MultiEval

    evaluation = MultiEval("runs/ml-small", recommend=20)
    evaluation.add_datasets(partition_users(ratings, 5, SampleN(5), seed=1), name="ML-Small")
    evaluation.add_algorithms(Popular(), name="Pop")
    evaluation.add_algorithms([BiasedMF(f) for f in (20, 30)], attrs=["features"], name="ALS")
    evaluation.run()
    results = evaluation.collect_results()

**Runs.** Every partition of every data set meets every algorithm. ``RunId`` counts from 1 with the data
sets (and their partitions) outer and the algorithms inner, in the order they were added; ids are stable
as long as the same data sets and algorithms are added in the same order (so a fan-out job can run
``run(runs=[i])`` for its own ``i``). A run fits a fresh copy of the algorithm
(``type(algo)(**algo.get_params())``) on the training data collected to pandas, predicts the test ratings
when asked to and the model predicts ratings (``Recommender.predicts_ratings``), recommends ``recommend`` items
to every test user (``True``: every candidate), and measures the lists with
:class:`~spark_recs.evaluation.accuracy.RecListAnalysis` (over all test users: one without
recommendations scores 0) and the predictions with
:func:`~spark_recs.evaluation.accuracy.prediction_metrics` (rows without a prediction left out and
counted in ``n_pred_missing``).

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

**MLflow.** One parent run per evaluation (named after the folder; its id in ``mlflow_parent_run.txt`` so
every later ``run`` call and every fan-out job adds to it) and one nested run per run: params ``RunId``,
``DataSet``, ``Partition``, ``AlgoClass``, ``AlgoStr``, the attrs and extra columns, the model's
``get_params()`` as ``algo.<name>`` and ``seed``; metrics (MLflow keys: ``@`` becomes ``_at_``, e.g.
``ndcg_at_10``) with ``TrainTime``/``PredTime``/``RecTime``; the artifact ``user_metrics.csv`` (and the
logged model with ``save_models``). A run that raises ends ``FAILED`` with an ``error`` tag and a
``traceback.txt``; one a killed call left ``RUNNING`` is ended ``KILLED`` when its RunId runs again. After
``run`` the parent gets ``runs.csv`` and ``plots/*.png``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import sys
import textwrap
import time
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_recs import batch
from spark_recs.data import versioned
from spark_recs.data.io import read_table, write_table
from spark_recs.evaluation.accuracy import TOPN_METRICS, RecListAnalysis, prediction_metrics
from spark_recs.models.base import Recommender
from spark_recs.runtime import get_spark

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "spark_recs-multieval"
DEFAULT_METRICS = ("ndcg", "ndcg@10", "precision@10", "recall@10", "recip_rank", "hit@10")
PREDICTION_METRICS = ("rmse", "mae", "user_rmse", "user_mae")
COUNTS = ("n_test_users", "n_users_with_recs", "n_pred_missing")
KEY_COLUMNS = ("RunId", "DataSet", "Partition", "AlgoClass", "AlgoStr")
TIME_COLUMNS = ("TrainTime", "PredTime", "RecTime")
STATUS_COLUMNS = ("status", "error")
RUN_ID_COLUMN = "MLflowRunId"
PARENT_RUN_FILE = "mlflow_parent_run.txt"
TEST_ROWS_PER_PARTITION = 200_000

_OUTPUT_TABLES = ("recommendations", "predictions")
_TABLE_ENTRY = re.compile(r"^(?P<hidden>\.)?RunId=(?P<id>\d+)(?P<rest>\..*)?$")
_FILE_ENTRY = re.compile(r"^(?P<hidden>\.)?run-(?P<id>\d+)\.(?P<ext>pt|csv|json)(?P<rest>\..*)?$")
_FILE_FOLDERS = {"models": "pt", "user_metrics": "csv", "runs": "json"}


@dataclass
class _Algorithm:
    algo: Recommender
    columns: dict  # attrs and extra keyword columns, in the runs table
    label: str  # AlgoStr


@dataclass
class _DataSet:
    name: str
    source: object
    candidates: object
    columns: dict
    pairs: list | None = None  # (train, test) per partition, resolved on first need


@dataclass(frozen=True)
class _Run:
    id: int
    dataset: int
    partition: int
    algorithm: int


class MultiEval:
    """Evaluate many algorithms on many data sets (LensKit's ``MultiEval``) with Spark batch scoring and
    MLflow tracking; see the module docstring for runs, on-disk layout, restarts and MLflow.

    ``path``: the evaluation folder (created). ``predict``: predict test ratings (models that predict
    ratings only). ``recommend``: list length; ``True`` = every candidate; ``None``/``False``/``0`` = no
    lists. ``candidates``: the default candidate sets, as in LensKit a function of the training data
    (pandas) returning what :func:`spark_recs.batch.recommend` accepts (a dict or function user -> items,
    or a ``user, item`` DataFrame), or such a value directly; ``None`` = each model's default.
    ``save_models``: save each fitted model (``models/run-<id>.pt``) and log it to the run's MLflow run.
    ``eval_n_jobs``: torch threads per Spark task in batch scoring (``num_threads``; default
    ``spark.task.cpus``). ``combine``: rebuild ``runs.csv`` after each run and log the runs table and
    plots to the parent run at the end of :meth:`run`; ``False`` leaves that to :meth:`combine_outputs`
    (for fan-out jobs). ``spark``: the session for pandas data and path reads (default: that of the
    data, the active one, or :func:`~spark_recs.runtime.get_spark`). ``experiment`` (default
    ``"spark_recs-multieval"``) and ``tracking_uri`` (default
    :func:`~spark_recs.runtime.default_tracking_uri`) place the MLflow runs. ``metrics``: top-N metrics,
    each ``"name"`` or ``"name@k"`` (``ndcg``, ``precision``, ``recall``, ``hit``, ``recip_rank``), a
    ``(name, k)`` pair or a dict of :meth:`RecListAnalysis.add_metric` arguments (default
    :data:`DEFAULT_METRICS`). ``seed``: Python, NumPy and torch are seeded from ``(seed, RunId)`` before
    each fit (``None``: not seeded), so a run gives the same result in any job.
    """

    def __init__(
        self,
        path,
        *,
        predict: bool = True,
        recommend=100,
        candidates=None,
        save_models: bool = False,
        eval_n_jobs: int | None = None,
        combine: bool = True,
        spark: SparkSession | None = None,
        experiment: str | None = None,
        tracking_uri: str | None = None,
        metrics=None,
        seed: int | None = 42,
    ) -> None:
        self.path = Path(path).absolute()
        self.path.mkdir(parents=True, exist_ok=True)
        self.predict = bool(predict)
        if recommend is True:
            self._recommend, self._n = True, None
        elif not recommend:
            self._recommend, self._n = False, None
        elif isinstance(recommend, (int, np.integer)) and recommend > 0:
            self._recommend, self._n = True, int(recommend)
        else:
            raise ValueError(
                f"recommend must be a positive int, True (unlimited) or falsy (off), got {recommend!r}"
            )
        self.recommend = recommend
        self.candidates = candidates
        self.save_models = bool(save_models)
        self.eval_n_jobs = eval_n_jobs
        self.combine = bool(combine)
        self.spark = spark
        self.experiment = experiment or DEFAULT_EXPERIMENT
        self.tracking_uri = tracking_uri
        self.seed = seed
        self._metric_specs = [_metric_spec(m) for m in (DEFAULT_METRICS if metrics is None else metrics)]
        self._analysis()  # validate now, not in the middle of a run
        self._algorithms: list[_Algorithm] = []
        self._datasets: list[_DataSet] = []
        self._loaded: tuple | None = None  # ((dataset, partition), data) of the partition in use

    # ---- configuration ------------------------------------------------------------------------------

    def add_algorithms(self, algos, attrs=(), **kwargs) -> None:
        """Add one algorithm or a list of them. ``attrs``: attribute names whose values become runs-table
        columns; ``name=``: the ``AlgoStr`` label (default: the algorithm's ``repr``); any other keyword
        becomes a column with that value."""
        algos = [algos] if isinstance(algos, Recommender) or not isinstance(algos, Iterable) else list(algos)
        name = kwargs.pop("name", None)
        attrs = [attrs] if isinstance(attrs, str) else list(attrs)
        self._check_columns([*attrs, *kwargs], "add_algorithms")
        for algo in algos:
            if not isinstance(algo, Recommender):
                raise TypeError(
                    f"MultiEval runs user models (spark_recs Recommender subclasses), not {type(algo).__name__}"
                )
            columns = {a: _plain(getattr(algo, a, None)) for a in attrs} | {
                k: _plain(v) for k, v in kwargs.items()
            }
            self._algorithms.append(_Algorithm(algo, columns, str(name) if name is not None else repr(algo)))

    def add_datasets(self, data, name: str | None = None, candidates=None, **kwargs) -> None:
        """Add a data set: a ``(train, test)`` pair, an iterable of pairs (or of objects with ``.train``
        and ``.test``, as :func:`~spark_recs.data.split.partition_users` yields), or a function returning
        either (called when the runs are first listed). A side is a pandas or Spark DataFrame
        (``user, item[, rating, ...]``) or a table name / path (:func:`~spark_recs.data.io.read_table`).
        Each pair is a ``Partition``, numbered from 1. ``name`` (default ``"data"``) is the ``DataSet``
        column and must be unique; ``candidates`` overrides the evaluation's default for this data set;
        other keywords become runs-table columns."""
        name = "data" if name is None else str(name)
        if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\"):
            raise ValueError(f"data set name {name!r} must be a plain folder name (no '/', not hidden)")
        if any(d.name == name for d in self._datasets):
            raise ValueError(f"a data set named {name!r} was already added; pass a different name=")
        self._check_columns(list(kwargs), "add_datasets")
        columns = {k: _plain(v) for k, v in kwargs.items()}
        self._datasets.append(_DataSet(name, data, candidates, columns))

    def _check_columns(self, names, where: str) -> None:
        reserved = {
            *KEY_COLUMNS,
            *TIME_COLUMNS,
            *STATUS_COLUMNS,
            RUN_ID_COLUMN,
            *self._metric_names(),
            *PREDICTION_METRICS,
            *COUNTS,
        }
        clash = sorted(set(names) & reserved) + [n for n in names if str(n).startswith("_")]
        if clash:
            raise ValueError(f"{where}: column name(s) {clash} are reserved for MultiEval's own columns")

    def persist_data(self, overwrite: bool = False) -> None:
        """Write every data set's partitions to ``data/<DataSet>/<Partition>/{train,test}`` (Parquet) and
        read them from there from now on, so later runs (other jobs) need not recompute the splits.

        A data set already persisted in this folder (its ``_manifest.json`` exists) is reused without
        evaluating its source, unless ``overwrite``."""
        for ds in self._datasets:
            folder = self.path / "data" / ds.name
            manifest = folder / "_manifest.json"
            if manifest.exists() and not overwrite:
                count = int(json.loads(manifest.read_text())["partitions"])
                log.info("data set %s: reusing %d persisted partitions in %s", ds.name, count, folder)
            else:
                pairs = self._partitions(ds)
                for number, (train, test) in enumerate(pairs, 1):
                    for side, frame in (("train", train), ("test", test)):
                        spark = self._session(frame)
                        target = folder / str(number) / side
                        write_table(_to_spark(frame, spark), str(target), format="parquet")
                count = len(pairs)
                _write_text(manifest, json.dumps({"name": ds.name, "partitions": count}))
                log.info("data set %s: persisted %d partitions to %s", ds.name, count, folder)
            ds.pairs = [
                (str(folder / str(p) / "train"), str(folder / str(p) / "test")) for p in range(1, count + 1)
            ]
        self._loaded = None

    # ---- the runs -----------------------------------------------------------------------------------

    def _partitions(self, ds: _DataSet) -> list:
        if ds.pairs is None:
            source = ds.source() if callable(ds.source) else ds.source
            ds.pairs = _as_pairs(source, ds.name)
        return ds.pairs

    def _plan(self) -> list[_Run]:
        runs, run_id = [], 0
        for d, ds in enumerate(self._datasets):
            for partition in range(1, len(self._partitions(ds)) + 1):
                for a in range(len(self._algorithms)):
                    run_id += 1
                    runs.append(_Run(run_id, d, partition, a))
        return runs

    def run_count(self) -> int:
        """The number of runs: partitions of all data sets x algorithms."""
        return len(self._plan())

    def planned_runs(self) -> pd.DataFrame:
        """The runs this evaluation defines (``RunId, DataSet, Partition, AlgoClass, AlgoStr`` and the
        attrs/extra columns), whether run or not."""
        return pd.DataFrame([self._describe(r) for r in self._plan()])

    def _describe(self, run: _Run) -> dict:
        ds, algo = self._datasets[run.dataset], self._algorithms[run.algorithm]
        row = {
            "RunId": run.id,
            "DataSet": ds.name,
            "Partition": run.partition,
            "AlgoClass": type(algo.algo).__name__,
            "AlgoStr": algo.label,
        }
        return row | algo.columns | ds.columns

    def run(self, runs=None, progress=None) -> None:
        """Run every run, or only ``runs`` (a 1-based RunId or a list of them), in RunId order, skipping
        those already recorded ok. ``progress``: one line per finished run to stderr (its status and
        times, and how many are left); ``False``: none.

        Nested MLflow runs of the selected RunIds left ``RUNNING`` by an earlier, killed call are ended
        ``KILLED`` first (only those started before this call: a RunId is run by one job at a time, as
        for the leftovers on disk)."""
        invoked = time.time()
        plan = self._plan()
        if runs is None:
            selected, scope = plan, None
        else:
            wanted = {int(runs)} if isinstance(runs, (int, np.integer)) else {int(r) for r in runs}
            unknown = sorted(wanted - {r.id for r in plan})
            if unknown:
                raise ValueError(f"no run(s) {unknown}: this evaluation has RunIds 1..{len(plan)}")
            selected, scope = [r for r in plan if r.id in wanted], wanted
        ok = self._ok_ids()
        self._remove_leftovers(scope, ok)
        todo = [r for r in selected if r.id not in ok]
        log.info("MultiEval %s: %d of %d selected runs to do", self.path, len(todo), len(selected))
        if not todo:
            if self.combine:
                self._write_runs_csv()
            return
        from spark_recs import tracking

        parent = tracking.parent_run_id(
            self.experiment, self.path.name, self.path / PARENT_RUN_FILE, tracking_uri=self.tracking_uri
        )
        try:
            with tracking.resumed_run(parent, tracking_uri=self.tracking_uri):
                tracking.kill_stale_children(parent, "RunId", {str(r.id) for r in todo}, invoked)
                for done, r in enumerate(todo, 1):
                    record = self._run_one(r)
                    if self.combine:
                        self._write_runs_csv()
                    if progress is not False:
                        print(_run_line(record, done, len(todo)), file=sys.stderr, flush=True)
                if self.combine:
                    self._log_summary()
        finally:
            self._loaded = None

    def _run_one(self, run: _Run) -> dict:
        """Fit, score and measure one run; write and return its record."""
        import mlflow

        from spark_recs import tracking

        algo = self._algorithms[run.algorithm]
        ds = self._datasets[run.dataset]
        description = self._describe(run)
        what = f"run {run.id} ({algo.label} on {ds.name}/{run.partition})"
        self._remove_outputs(run.id)  # what a failed attempt may have left
        record = description | dict.fromkeys(TIME_COLUMNS)
        metrics: dict = {}
        started = _now()
        child = tracking.start_child_run(
            f"run-{run.id}", tags={"RunId": str(run.id), "DataSet": ds.name, "AlgoStr": algo.label}
        )
        child_id = child.info.run_id
        log.info("%s: starting (MLflow run %s)", what, child_id)
        try:
            tracking.log_params_flat(description | {"seed": self.seed})
            tracking.log_params_flat(algo.algo.get_params(), prefix="algo.")
            train, test, test_frame = self._load(run)
            spark = test_frame.sparkSession
            model = type(algo.algo)(**algo.algo.get_params())
            self._seed(run.id)
            started_at = time.perf_counter()
            model.fit(train)
            record["TrainTime"] = time.perf_counter() - started_at

            if self.predict and model.predicts_ratings and "rating" in test.columns:
                target = self._output("predictions", run.id)
                started_at = time.perf_counter()
                predictions = batch.predict(model, test_frame, num_threads=self.eval_n_jobs)
                write_table(predictions, str(target), format="parquet")
                record["PredTime"] = time.perf_counter() - started_at
                found = prediction_metrics(spark.read.parquet(str(target)), missing="ignore")
                metrics |= {k: found[k] for k in PREDICTION_METRICS} | {"n_pred_missing": found["n_missing"]}

            if self._recommend:
                target = self._output("recommendations", run.id)
                candidates = self._candidates(ds, train, spark)
                users = test_frame.select("user").distinct()
                started_at = time.perf_counter()
                recs = batch.recommend(model, users, self._n, candidates, num_threads=self.eval_n_jobs)
                write_table(recs, str(target), format="parquet")
                record["RecTime"] = time.perf_counter() - started_at
                analysis = self._analysis()
                per_user = analysis.compute(spark.read.parquet(str(target)), test_frame).toPandas()
                per_user = per_user.sort_values("user", kind="stable").reset_index(drop=True)
                metrics |= analysis.summary(per_user)
                metrics |= {
                    "n_test_users": len(per_user),
                    "n_users_with_recs": int((per_user["nrecs"] > 0).sum()),
                }
                csv = self.path / "user_metrics" / f"run-{run.id}.csv"
                _write_text(csv, per_user.to_csv(index=False))
                tracking.log_frame(per_user, "user_metrics.csv")

            if self.save_models:
                model.save(self.path / "models" / f"run-{run.id}.pt")
                tracking.log_model(model)
            tracking.log_metrics_clean(metrics | {k: record[k] for k in TIME_COLUMNS})
            mlflow.end_run()
            record |= {"status": "ok", "error": None}
            log.info("%s: done", what)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc()
            log.error("%s failed: %s\n%s", what, error, trace)
            self._remove_outputs(run.id)
            metrics = {}
            _quietly(tracking.fail_run, child_id, error, trace)
            record |= {"status": "failed", "error": error, "_traceback": trace}
        except BaseException:  # interrupted: no record, the next run() cleans up and runs it again
            self._remove_outputs(run.id)
            _quietly(tracking.fail_run, child_id, "interrupted", status="KILLED")
            raise
        record |= metrics | {
            RUN_ID_COLUMN: child_id,
            "_label": self._plot_label(run.algorithm),
            "_seed": self.seed,
            "_started": started,
            "_finished": _now(),
        }
        _write_text(self.path / "runs" / f"run-{run.id}.json", json.dumps(_jsonable(record), indent=1))
        return record

    def _seed(self, run_id: int) -> None:
        if self.seed is None:
            return
        value = int(np.random.SeedSequence([int(self.seed), run_id]).generate_state(1)[0])
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)

    def _plot_label(self, index: int) -> str:
        """AlgoStr, plus the attrs/extra columns when several algorithms share it (then the index too)."""
        algo = self._algorithms[index]
        same = [a for a in self._algorithms if a.label == algo.label]
        if len(same) == 1:
            return algo.label
        details = ", ".join(f"{k}={v}" for k, v in algo.columns.items())
        label = f"{algo.label} ({details})" if details else algo.label
        twins = [a for a in same if a.columns == algo.columns]
        return label if len(twins) == 1 else f"{label} #{index + 1}"

    # ---- data ---------------------------------------------------------------------------------------

    def _session(self, *frames) -> SparkSession:
        if self.spark is not None:
            return self.spark
        for frame in frames:
            if isinstance(frame, SparkDataFrame):
                return frame.sparkSession
        return SparkSession.getActiveSession() or get_spark()

    def _load(self, run: _Run) -> tuple[pd.DataFrame, pd.DataFrame, SparkDataFrame]:
        """Train and test of the run's partition as pandas (collected once per partition) and the test
        set as a Spark DataFrame built from that pandas copy (no recomputation of the split), in one
        partition per :data:`TEST_ROWS_PER_PARTITION` rows: every scoring task restores the model, so a
        small test set is not spread over many tasks."""
        key = (run.dataset, run.partition)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # release the previous partition first
            ds = self._datasets[run.dataset]
            train, test = self._partitions(ds)[run.partition - 1]
            spark = self._session(train, test)
            train, test = _to_pandas(train, spark, "train"), _to_pandas(test, spark, "test")
            log.info(
                "data set %s/%d: %d training and %d test rows", ds.name, run.partition, len(train), len(test)
            )
            parts = max(1, math.ceil(len(test) / TEST_ROWS_PER_PARTITION))
            self._loaded = (key, (train, test, spark.createDataFrame(test).coalesce(parts)))
        return self._loaded[1]

    def _candidates(self, ds: _DataSet, train: pd.DataFrame, spark: SparkSession):
        spec = ds.candidates if ds.candidates is not None else self.candidates
        if spec is None:
            return None
        if callable(spec) and not isinstance(spec, (dict, pd.DataFrame, SparkDataFrame)):
            spec = spec(train)
        return spark.createDataFrame(spec) if isinstance(spec, pd.DataFrame) else spec

    def _analysis(self) -> RecListAnalysis:
        analysis = RecListAnalysis(["user"])
        for spec in self._metric_specs:
            analysis.add_metric(**spec)
        return analysis

    def _metric_names(self) -> list[str]:
        return self._analysis().metric_names

    # ---- files --------------------------------------------------------------------------------------

    def _output(self, table: str, run_id: int) -> Path:
        return self.path / table / f"RunId={run_id}"

    def _records(self) -> dict[int, dict]:
        records = {}
        for file in sorted((self.path / "runs").glob("run-*.json")):
            match = _FILE_ENTRY.match(file.name)
            if match and not match["hidden"] and not match["rest"]:
                records[int(match["id"])] = json.loads(file.read_text())
        return records

    def _ok_ids(self) -> set[int]:
        return {run_id for run_id, record in self._records().items() if record.get("status") == "ok"}

    def _leftovers(self):
        """``(run id, hidden or partial, path)`` of every per-run output entry in the folder."""
        for table in _OUTPUT_TABLES:
            folder = self.path / table
            if folder.is_dir():
                for entry in folder.iterdir():
                    # A version folder of a local Parquet output (data/versioned.py) belongs to its RunId.
                    match = _TABLE_ENTRY.match(versioned.base_of(entry).name)
                    if match:
                        yield int(match["id"]), bool(match["hidden"] or match["rest"]), entry
        for name, ext in _FILE_FOLDERS.items():
            folder = self.path / name
            if folder.is_dir():
                for entry in folder.iterdir():
                    match = _FILE_ENTRY.match(entry.name)
                    if match and match["ext"] == ext:
                        partial = bool(match["hidden"] or match["rest"])
                        if name != "runs" or partial:  # records themselves are not leftovers
                            yield int(match["id"]), partial, entry

    def _remove_leftovers(self, scope: set[int] | None, ok: set[int]) -> None:
        """Remove staging/partial entries and outputs of runs without an ok record (within ``scope``)."""
        for run_id, partial, entry in list(self._leftovers()):
            if (scope is None or run_id in scope) and (partial or run_id not in ok):
                log.warning("removing %s, left by an unfinished run %d", entry, run_id)
                _remove(entry)

    def _remove_outputs(self, run_id: int) -> None:
        for found, _, entry in list(self._leftovers()):
            if found == run_id:
                _remove(entry)

    def collect_results(self) -> pd.DataFrame:
        """The runs table (one row per recorded run, by RunId) as a pandas DataFrame: ``RunId, DataSet,
        Partition, AlgoClass, AlgoStr``, the attrs and extra columns, ``TrainTime, PredTime, RecTime``,
        ``status, error``, the metrics and counts, and ``MLflowRunId``."""
        rows = [
            {k: v for k, v in record.items() if not k.startswith("_")}
            for _, record in sorted(self._records().items())
        ]
        if not rows:
            return pd.DataFrame(columns=[*KEY_COLUMNS, *TIME_COLUMNS, *STATUS_COLUMNS, RUN_ID_COLUMN])
        table = pd.DataFrame(rows)
        tail_names = [*TIME_COLUMNS, *STATUS_COLUMNS, *self._metric_names(), *PREDICTION_METRICS, *COUNTS]
        tail = [c for c in tail_names if c in table.columns]
        head = [c for c in KEY_COLUMNS if c in table.columns]
        middle = [c for c in table.columns if c not in {*head, *tail, RUN_ID_COLUMN}]
        for count in COUNTS:
            if count in table.columns:
                table[count] = table[count].astype("Int64")
        return table[head + middle + tail + [RUN_ID_COLUMN]]

    def _write_runs_csv(self) -> Path:
        target = self.path / "runs.csv"
        _write_text(target, self.collect_results().to_csv(index=False))
        return target

    def _table(self, name: str) -> SparkDataFrame:
        folder = self.path / name
        if not folder.is_dir() or not any(_TABLE_ENTRY.match(e.name) for e in folder.iterdir()):
            raise FileNotFoundError(f"no {name} in {self.path}: run the evaluation first")
        ok = sorted(self._ok_ids())
        return self._session().read.parquet(str(folder)).where(F.col("RunId").isin(ok))

    def recommendations(self) -> SparkDataFrame:
        """Every ok run's recommendations: ``user, rank, item, score, RunId`` (Spark, lazy)."""
        return self._table("recommendations")

    def predictions(self) -> SparkDataFrame:
        """Every ok run's predictions: the test columns, ``prediction`` and ``RunId`` (Spark, lazy)."""
        return self._table("predictions")

    # ---- summary ------------------------------------------------------------------------------------

    def combine_outputs(self) -> pd.DataFrame:
        """Rebuild ``runs.csv`` and the plots from the records and log them to the parent MLflow run
        (what :meth:`run` does at its end with ``combine=True``); returns the runs table."""
        from spark_recs import tracking

        parent = tracking.parent_run_id(
            self.experiment, self.path.name, self.path / PARENT_RUN_FILE, tracking_uri=self.tracking_uri
        )
        with tracking.resumed_run(parent, tracking_uri=self.tracking_uri):
            self._log_summary()
        return self.collect_results()

    def _log_summary(self) -> None:
        import mlflow

        table = self.collect_results()
        mlflow.log_artifact(str(self._write_runs_csv()))
        plots = self._plot(table)
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")

    def _plot(self, table: pd.DataFrame) -> list[Path]:
        """One PNG per metric: per data set, one bar per algorithm (mean over partitions, std error bars)."""
        ok = table[table["status"] == "ok"] if "status" in table.columns else table.iloc[0:0]
        names = [*self._metric_names(), *PREDICTION_METRICS]
        names = [m for m in names if m in ok.columns and ok[m].notna().any()]
        if ok.empty or not names:
            return []
        try:
            from matplotlib.figure import Figure
        except ImportError:
            log.warning("matplotlib is not installed: no plots")
            return []
        labels = {run_id: r.get("_label", r["AlgoStr"]) for run_id, r in self._records().items()}
        ok = ok.assign(_label=ok["RunId"].map(labels))
        datasets = list(dict.fromkeys(ok["DataSet"]))
        folder = self.path / "plots"
        folder.mkdir(exist_ok=True)
        written = []
        for metric in names:
            stats = ok.groupby(["DataSet", "_label"], sort=False)[metric].agg(["mean", "std"])
            widest = max(len(stats.loc[d]) for d in datasets)
            size = (max(4.5, 1.5 + 1.3 * widest * len(datasets)), 4.8)
            figure = Figure(figsize=size, layout="constrained")
            axes = figure.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
            for ax, name in zip(axes, datasets):
                part = stats.loc[name]
                ax.bar(
                    range(len(part)), part["mean"], yerr=part["std"].fillna(0.0), capsize=4, color="tab:blue"
                )
                ticks = [textwrap.fill(str(label), 18) for label in part.index]
                ax.set_xticks(range(len(part)), ticks, fontsize=7)
                ax.set_title(name)
            axes[0].set_ylabel(metric)
            figure.suptitle(f"{metric}: mean over partitions, error bars = std")
            target = folder / f"{_file_name(metric)}.png"
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.png")
            figure.savefig(partial, dpi=100)
            os.replace(partial, target)
            written.append(target)
        return written


# ---- helpers ----------------------------------------------------------------------------------------


def _metric_spec(spec) -> dict:
    if isinstance(spec, dict):
        return dict(spec)
    if isinstance(spec, (tuple, list)):
        return {"metric": spec[0], "k": spec[1] if len(spec) > 1 else None} | (
            {"gain": spec[2]} if len(spec) > 2 else {}
        )
    if isinstance(spec, str):
        kind, _, k = spec.partition("@")
        if kind not in TOPN_METRICS or (k and not k.isdigit()):
            raise ValueError(f"unknown metric {spec!r}: use one of {TOPN_METRICS}, optionally with @k")
        return {"metric": kind, "k": int(k) if k else None}
    raise TypeError(f"a metric is a 'name[@k]' string, a (name, k) pair or a dict, not {spec!r}")


def _is_side(value) -> bool:
    return isinstance(value, (pd.DataFrame, SparkDataFrame, str, os.PathLike))


def _as_pairs(source, name: str) -> list[tuple]:
    if _is_side(source):
        raise TypeError(f"data set {name!r}: give a (train, test) pair, not a single table")
    if isinstance(source, (tuple, list)) and len(source) == 2 and all(_is_side(s) for s in source):
        return [tuple(source)]
    pairs = []
    for item in source:
        if isinstance(item, (tuple, list)) and len(item) == 2 and all(_is_side(s) for s in item):
            pairs.append(tuple(item))
        elif hasattr(item, "train") and hasattr(item, "test") and not _is_side(item):
            pairs.append((item.train, item.test))
        else:
            raise TypeError(f"data set {name!r}: expected (train, test) pairs, got {type(item).__name__}")
    if not pairs:
        raise ValueError(f"data set {name!r} has no (train, test) pairs")
    return pairs


def _to_spark(frame, spark: SparkSession) -> SparkDataFrame:
    if isinstance(frame, SparkDataFrame):
        return frame
    if isinstance(frame, pd.DataFrame):
        return spark.createDataFrame(frame)
    return read_table(spark, str(frame))


def _to_pandas(frame, spark: SparkSession, side: str) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        out = frame
    elif isinstance(frame, SparkDataFrame):
        out = frame.toPandas()
    else:
        out = read_table(spark, str(frame)).toPandas()
        if "rating" in out.columns and out["rating"].dtype == object:  # text files are read as strings
            out = out.assign(rating=pd.to_numeric(out["rating"]))
    missing = [c for c in ("user", "item") if c not in out.columns]
    if missing:
        raise ValueError(f"the {side} data lacks column(s) {missing} (columns: {list(out.columns)})")
    return out


def _plain(value):
    """A value fit for a JSON record and a CSV cell (numpy scalars to Python, tuples to lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _jsonable(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a hidden temporary file beside it, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _file_name(metric: str) -> str:
    return re.sub(r"[^\w.-]", "_", metric.replace("@", "_at_"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quietly(function, *args, **kwargs) -> None:
    """Call ``function``, logging (not raising) its error: bookkeeping must not hide the run's own error."""
    try:
        function(*args, **kwargs)
    except Exception:
        log.exception("could not record the failure in MLflow")


def _run_line(record: dict, done: int, total: int) -> str:
    """The progress line of a finished run: which one, its status and times, and how many are left."""
    first_line = str(record["error"]).partition("\n")[0]
    status = "ok" if record["status"] == "ok" else f"failed ({first_line})"
    times = [
        f"{label} {record[column]:.1f}s"
        for column, label in zip(TIME_COLUMNS, ("fit", "predict", "recommend"))
        if record.get(column) is not None
    ]
    which = (
        f"RunId {record['RunId']}, {record['AlgoStr']} on {record['DataSet']} partition {record['Partition']}"
    )
    return f"MultiEval run {done}/{total} ({which}): {', '.join([status, *times])}; {total - done} left"
