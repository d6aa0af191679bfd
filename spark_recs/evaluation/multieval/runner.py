"""Executing MultiEval runs: fit, score through :mod:`spark_recs.batch`, measure, record.

A run fits a fresh copy of the algorithm (``type(algo)(**algo.get_params())``) on the training data
collected to pandas, predicts the test ratings when asked to and the model predicts ratings
(``Recommender.predicts_ratings``), recommends ``recommend`` items to every test user (``True``: every
candidate), and measures the lists with :class:`~spark_recs.evaluation.accuracy.RecListAnalysis` (over all
test users: one without recommendations scores 0) and, beyond accuracy, their catalogue coverage, exposure
Gini, novelty, popularity, personalisation and, given the data set's item vectors, intra-list diversity at
:data:`BEYOND_CUTOFF` against the run's training data (:func:`~spark_recs.evaluation.beyond.beyond_accuracy`),
and the predictions with
:func:`~spark_recs.evaluation.accuracy.prediction_metrics` (rows without a prediction left out and counted
in ``n_pred_missing``).
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession

from spark_recs import batch, tracking
from spark_recs.data.io import write_table
from spark_recs.evaluation.accuracy import TOPN_METRICS, RecListAnalysis, prediction_metrics
from spark_recs.evaluation.beyond import BEYOND_METRICS, beyond_accuracy
from spark_recs.evaluation.multieval.plan import Run, session, to_spark
from spark_recs.evaluation.multieval.report import Report, end_failed
from spark_recs.evaluation.multieval.store import PREDICTION_METRICS, RUN_ID_COLUMN, TIME_COLUMNS, Store
from spark_recs.serving.registry import log_model

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg", "ndcg@10", "precision@10", "recall@10", "recip_rank", "hit@10")
#: The cut-off of the beyond-accuracy columns (:data:`BEYOND_COLUMNS`) of every run that recommends.
BEYOND_CUTOFF = 10
BEYOND_COLUMNS = tuple(f"{m}@{BEYOND_CUTOFF}" for m in BEYOND_METRICS)
TEST_ROWS_PER_PARTITION = 200_000


def topn_analysis(metrics=None) -> RecListAnalysis:
    """The analysis of MultiEval's ``metrics`` (default :data:`DEFAULT_METRICS`; a tuple may add a gain
    column as its third item), one test user per list."""
    analysis = RecListAnalysis(["user"])
    for spec in DEFAULT_METRICS if metrics is None else metrics:
        if isinstance(spec, dict):
            analysis.add_metric(**spec)
        elif isinstance(spec, (tuple, list)):
            gain = {"gain": spec[2]} if len(spec) > 2 else {}
            analysis.add_metric(spec[0], spec[1] if len(spec) > 1 else None, **gain)
        elif isinstance(spec, str):
            kind, _, k = spec.partition("@")
            if kind not in TOPN_METRICS or (k and not k.isdigit()):
                raise ValueError(f"unknown metric {spec!r}: use one of {TOPN_METRICS}, optionally with @k")
            analysis.add_metric(kind, int(k) if k else None)
        else:
            raise TypeError(f"a metric is a 'name[@k]' string, a (name, k) pair or a dict, not {spec!r}")
    return analysis


@dataclass(eq=False)
class Runner:
    """Runs MultiEval's runs with its options into ``store`` and MLflow (``report``), measured by ``analysis``."""

    store: Store
    report: Report
    analysis: RecListAnalysis
    predict: bool
    recommend: bool | int | None
    candidates: object
    save_models: bool
    eval_n_jobs: int | None
    combine: bool
    seed: int | None

    def __post_init__(self) -> None:
        n = self.recommend
        if not (n is True or not n or (isinstance(n, (int, np.integer)) and n > 0)):
            raise ValueError(f"recommend must be a positive int, True (unlimited) or falsy (off), got {n!r}")
        self._loaded: tuple | None = None  # ((data set name, partition), data) of the partition in use

    def run(self, selected: list[Run], scope: set[int] | None, progress=None) -> None:
        """Run ``selected`` but those recorded ok, after removing the leftovers of the runs in ``scope``."""
        invoked = time.time()
        ok = self.store.ok_ids()
        self.store.remove_outputs(scope, ok)
        todo = [r for r in selected if r.id not in ok]
        log.info("MultiEval %s: %d of %d selected runs to do", self.store.path, len(todo), len(selected))
        if not todo:
            if self.combine:
                self.store.write_runs_csv()
            return
        try:
            with self.report.parent() as parent:
                tracking.kill_stale_children(parent, "RunId", {str(r.id) for r in todo}, invoked)
                for done, r in enumerate(todo, 1):
                    record = self._run_one(r)
                    if self.combine:
                        self.store.write_runs_csv()
                    if progress is not False:
                        print(_run_line(record, done, len(todo)), file=sys.stderr, flush=True)
                if self.combine:
                    self.report.summary()
        finally:
            self._loaded = None

    def _run_one(self, run: Run) -> dict:
        """Fit, score and measure one run; write and return its record."""
        algo, description = run.algorithm, run.describe()
        what = f"run {run.id} ({algo.label} on {run.dataset.name}/{run.partition})"
        self.store.remove_outputs({run.id})  # what a failed attempt may have left
        record = description | dict.fromkeys(TIME_COLUMNS)
        metrics: dict = {}
        started = datetime.now(UTC).isoformat(timespec="seconds")
        tags = {"RunId": str(run.id), "DataSet": run.dataset.name, "AlgoStr": algo.label}
        tags |= tracking.run_tags(session(self.store.spark), self._locations(run))
        child = tracking.start_child_run(f"run-{run.id}", tags=tags).info.run_id
        log.info("%s: starting (MLflow run %s)", what, child)
        try:
            tracking.log_params_flat(description | {"seed": self.seed})
            tracking.log_params_flat(algo.algo.get_params(), prefix="algo.")
            train, test, test_frame = self._load(run)
            model = type(algo.algo)(**algo.algo.get_params())
            if self.seed is not None:
                seed = int(np.random.SeedSequence([int(self.seed), run.id]).generate_state(1)[0])
                random.seed(seed)
                np.random.seed(seed)
                torch.manual_seed(seed)
            started_at = time.perf_counter()
            model.fit(train)
            record["TrainTime"] = time.perf_counter() - started_at
            if self.predict and model.predicts_ratings and "rating" in test.columns:
                target = str(self.store.output("predictions", run.id))
                started_at = time.perf_counter()
                predictions = batch.predict(model, test_frame, num_threads=self.eval_n_jobs)
                write_table(predictions, target, format="parquet")
                record["PredTime"] = time.perf_counter() - started_at
                found = prediction_metrics(test_frame.sparkSession.read.parquet(target), missing="ignore")
                metrics |= {k: found[k] for k in PREDICTION_METRICS} | {"n_pred_missing": found["n_missing"]}
            if self.recommend:
                metrics |= self._recommend(model, run, train, test_frame, record)
            if self.save_models:
                model.save(self.store.run_file("models", run.id))
                log_model(model)
            tracking.log_metrics_clean(metrics | {k: record[k] for k in TIME_COLUMNS})
            mlflow.end_run()
            record |= {"status": "ok", "error": None}
            log.info("%s: done", what)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc()
            log.error("%s failed: %s\n%s", what, error, trace)
            self.store.remove_outputs({run.id})
            metrics = {}
            end_failed(child, error, trace)
            record |= {"status": "failed", "error": error, "_traceback": trace}
        except BaseException:  # interrupted: no record, the next run() cleans up and runs it again
            self.store.remove_outputs({run.id})
            end_failed(child, "interrupted", status="KILLED")
            raise
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        record |= metrics | {RUN_ID_COLUMN: child, "_label": run.label, "_seed": self.seed}
        record |= {"_started": started, "_finished": finished}
        self.store.write_record(record)
        return record

    def _locations(self, run: Run) -> dict[str, str]:
        """Where the run reads its data (a fold read by name or path, a persisted one) and writes."""
        train, test = run.dataset.partitions()[run.partition - 1]
        read = {side: str(frame) for side, frame in (("train", train), ("test", test)) if _is_location(frame)}
        written = {"predictions": self.predict, "recommendations": self.recommend}
        return read | {table: str(self.store.output(table, run.id)) for table, on in written.items() if on}

    def _recommend(self, model, run: Run, train: pd.DataFrame, test: SparkDataFrame, record: dict) -> dict:
        """Recommend to every test user into the run's ``recommendations`` (``RecTime`` in ``record``) and
        measure the lists (per user in ``user_metrics`` and MLflow); returns the metrics."""
        spark, target = test.sparkSession, str(self.store.output("recommendations", run.id))
        spec = run.dataset.candidates if run.dataset.candidates is not None else self.candidates
        if callable(spec) and not isinstance(spec, (dict, pd.DataFrame, SparkDataFrame)):
            spec = spec(train)
        candidates = spark.createDataFrame(spec) if isinstance(spec, pd.DataFrame) else spec
        users, n = test.select("user").distinct(), None if self.recommend is True else int(self.recommend)
        started_at = time.perf_counter()
        recs = batch.recommend(model, users, n, candidates, num_threads=self.eval_n_jobs)
        write_table(recs, target, format="parquet")
        record["RecTime"] = time.perf_counter() - started_at
        written = spark.read.parquet(target)
        per_user = self.analysis.compute(written, test).toPandas()
        per_user = per_user.sort_values("user", kind="stable").reset_index(drop=True)
        counts = {"n_test_users": len(per_user), "n_users_with_recs": int((per_user["nrecs"] > 0).sum())}
        beyond = beyond_accuracy(written, train, BEYOND_CUTOFF, item_vectors=run.dataset.vectors())
        metrics = self.analysis.summary(per_user) | counts | beyond
        self.store.write_user_metrics(run.id, per_user)
        tracking.log_frame(per_user, "user_metrics.csv")
        return metrics

    def _load(self, run: Run) -> tuple[pd.DataFrame, pd.DataFrame, SparkDataFrame]:
        """Train and test of the run's partition as pandas (collected once per partition) and the test set
        as Spark built from that copy, one partition per :data:`TEST_ROWS_PER_PARTITION` rows (every scoring
        task restores the model)."""
        key = (run.dataset.name, run.partition)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # release the previous partition first
            data = run.dataset.partitions()[run.partition - 1]
            spark = session(self.store.spark, *data)
            train, test = (_to_pandas(frame, spark, side) for frame, side in zip(data, ("train", "test")))
            log.info("data set %s/%d: %d training and %d test rows", *key, len(train), len(test))
            parts = max(1, math.ceil(len(test) / TEST_ROWS_PER_PARTITION))
            self._loaded = (key, (train, test, spark.createDataFrame(test).coalesce(parts)))
        return self._loaded[1]


def _is_location(frame) -> bool:
    return isinstance(frame, (str, os.PathLike))


def _to_pandas(frame, spark: SparkSession, side: str) -> pd.DataFrame:
    out = frame if isinstance(frame, pd.DataFrame) else to_spark(frame, spark).toPandas()
    from_table = _is_location(frame)  # read by name/path
    if from_table and "rating" in out.columns and out["rating"].dtype == object:
        out = out.assign(rating=pd.to_numeric(out["rating"]))  # text files are read as strings
    missing = [c for c in ("user", "item") if c not in out.columns]
    if missing:
        raise ValueError(f"the {side} data lacks column(s) {missing} (columns: {list(out.columns)})")
    return out


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
