"""Executing MultiEval runs: fit, score through :mod:`spark_recs.batch`, measure, record.

A run fits a fresh copy of the algorithm (``type(algo)(**algo.get_params())``) on the training data
collected to pandas, predicts the test ratings when asked to and the model predicts ratings
(``Recommender.predicts_ratings``), recommends ``recommend`` items to every test user (``True``: every
candidate), and measures the lists with :class:`~spark_recs.evaluation.accuracy.RecListAnalysis` (over all
test users: one without recommendations scores 0) and the predictions with
:func:`~spark_recs.evaluation.accuracy.prediction_metrics` (rows without a prediction left out and counted
in ``n_pred_missing``).
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession

from spark_recs import batch
from spark_recs.data.io import read_table, write_table
from spark_recs.evaluation.accuracy import TOPN_METRICS, RecListAnalysis, prediction_metrics
from spark_recs.evaluation.multieval.plan import DataSet, Run, session
from spark_recs.evaluation.multieval.report import ChildRun, Report
from spark_recs.evaluation.multieval.store import PREDICTION_METRICS, RUN_ID_COLUMN, TIME_COLUMNS, Store
from spark_recs.models.base import Recommender

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg", "ndcg@10", "precision@10", "recall@10", "recip_rank", "hit@10")
TEST_ROWS_PER_PARTITION = 200_000


def topn_analysis(metrics=None) -> RecListAnalysis:
    """The analysis of :class:`~spark_recs.evaluation.multieval.MultiEval`'s ``metrics`` (default
    :data:`DEFAULT_METRICS`; a tuple may add a gain column as its third item), one test user per list."""
    analysis = RecListAnalysis(["user"])
    for spec in DEFAULT_METRICS if metrics is None else metrics:
        analysis.add_metric(**_metric_spec(spec))
    return analysis


@dataclass(eq=False)
class Runner:
    """Runs the evaluation's runs into ``store`` and MLflow (``report``), measured by ``analysis``; the
    options are :class:`~spark_recs.evaluation.multieval.MultiEval`'s."""

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
        self.recommend, self.n = _list_length(self.recommend)
        self._loaded: tuple | None = None  # ((data set name, partition), data) of the partition in use

    def run(self, selected: list[Run], scope: set[int] | None, progress=None) -> None:
        """Run ``selected`` except those recorded ok, after removing the leftovers within ``scope`` (``None``:
        all); see :meth:`MultiEval.run`."""
        invoked = time.time()
        ok = self.store.ok_ids()
        self.store.remove_leftovers(scope, ok)
        todo = [r for r in selected if r.id not in ok]
        log.info("MultiEval %s: %d of %d selected runs to do", self.store.path, len(todo), len(selected))
        if not todo:
            if self.combine:
                self.store.write_runs_csv()
            return
        try:
            with self.report.parent() as parent:
                self.report.kill_stale(parent, [r.id for r in todo], invoked)
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
        algo = run.algorithm
        description = run.describe()
        what = f"run {run.id} ({algo.label} on {run.dataset.name}/{run.partition})"
        self.store.remove_outputs(run.id)  # what a failed attempt may have left
        record = description | dict.fromkeys(TIME_COLUMNS)
        metrics: dict = {}
        started = _now()
        child = ChildRun(run)
        log.info("%s: starting (MLflow run %s)", what, child.id)
        try:
            child.log_params(description | {"seed": self.seed}, algo.algo)
            train, test, test_frame = self._load(run)
            model = type(algo.algo)(**algo.algo.get_params())
            self._seed(run.id)
            started_at = time.perf_counter()
            model.fit(train)
            record["TrainTime"] = time.perf_counter() - started_at
            if self.predict and model.predicts_ratings and "rating" in test.columns:
                metrics |= self._predict(model, test_frame, run.id, record)
            if self.recommend:
                metrics |= self._recommend(model, run, train, test_frame, child, record)
            if self.save_models:
                model.save(self.store.run_file("models", run.id))
                child.log_model(model)
            child.finish(metrics | {k: record[k] for k in TIME_COLUMNS})
            record |= {"status": "ok", "error": None}
            log.info("%s: done", what)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trace = traceback.format_exc()
            log.error("%s failed: %s\n%s", what, error, trace)
            self.store.remove_outputs(run.id)
            metrics = {}
            child.fail(error, trace)
            record |= {"status": "failed", "error": error, "_traceback": trace}
        except BaseException:  # interrupted: no record, the next run() cleans up and runs it again
            self.store.remove_outputs(run.id)
            child.fail("interrupted", status="KILLED")
            raise
        record |= metrics | {
            RUN_ID_COLUMN: child.id,
            "_label": run.label,
            "_seed": self.seed,
            "_started": started,
            "_finished": _now(),
        }
        self.store.write_record(record)
        return record

    def _predict(self, model: Recommender, test: SparkDataFrame, run_id: int, record: dict) -> dict:
        """Predict the test ratings into the run's ``predictions`` (``PredTime`` in ``record``); returns the
        errors."""
        target = self.store.output("predictions", run_id)
        started_at = time.perf_counter()
        write_table(batch.predict(model, test, num_threads=self.eval_n_jobs), str(target), format="parquet")
        record["PredTime"] = time.perf_counter() - started_at
        found = prediction_metrics(test.sparkSession.read.parquet(str(target)), missing="ignore")
        return {k: found[k] for k in PREDICTION_METRICS} | {"n_pred_missing": found["n_missing"]}

    def _recommend(
        self,
        model: Recommender,
        run: Run,
        train: pd.DataFrame,
        test: SparkDataFrame,
        child: ChildRun,
        record: dict,
    ) -> dict:
        """Recommend to every test user into the run's ``recommendations`` (``RecTime`` in ``record``) and
        measure the lists (per user in ``user_metrics``); returns the metrics."""
        spark = test.sparkSession
        target = self.store.output("recommendations", run.id)
        candidates = self._candidates(run.dataset, train, spark)
        users = test.select("user").distinct()
        started_at = time.perf_counter()
        recs = batch.recommend(model, users, self.n, candidates, num_threads=self.eval_n_jobs)
        write_table(recs, str(target), format="parquet")
        record["RecTime"] = time.perf_counter() - started_at
        per_user = self.analysis.compute(spark.read.parquet(str(target)), test).toPandas()
        per_user = per_user.sort_values("user", kind="stable").reset_index(drop=True)
        counts = {"n_test_users": len(per_user), "n_users_with_recs": int((per_user["nrecs"] > 0).sum())}
        metrics = self.analysis.summary(per_user) | counts
        self.store.write_user_metrics(run.id, per_user)
        child.log_user_metrics(per_user)
        return metrics

    def _load(self, run: Run) -> tuple[pd.DataFrame, pd.DataFrame, SparkDataFrame]:
        """Train and test of the run's partition as pandas (collected once per partition) and the test set
        as Spark built from that copy, one partition per :data:`TEST_ROWS_PER_PARTITION` rows (every scoring
        task restores the model)."""
        key = (run.dataset.name, run.partition)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # release the previous partition first
            train, test = run.dataset.partitions()[run.partition - 1]
            spark = session(self.store.spark, train, test)
            train, test = _to_pandas(train, spark, "train"), _to_pandas(test, spark, "test")
            log.info(
                "data set %s/%d: %d training and %d test rows", key[0], run.partition, len(train), len(test)
            )
            parts = max(1, math.ceil(len(test) / TEST_ROWS_PER_PARTITION))
            self._loaded = (key, (train, test, spark.createDataFrame(test).coalesce(parts)))
        return self._loaded[1]

    def _candidates(self, ds: DataSet, train: pd.DataFrame, spark: SparkSession):
        spec = ds.candidates if ds.candidates is not None else self.candidates
        if spec is None:
            return None
        if callable(spec) and not isinstance(spec, (dict, pd.DataFrame, SparkDataFrame)):
            spec = spec(train)
        return spark.createDataFrame(spec) if isinstance(spec, pd.DataFrame) else spec

    def _seed(self, run_id: int) -> None:
        if self.seed is None:
            return
        value = int(np.random.SeedSequence([int(self.seed), run_id]).generate_state(1)[0])
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


def _list_length(recommend) -> tuple[bool, int | None]:
    """Whether to recommend, and how many items (``None``: every candidate)."""
    if recommend is True:
        return True, None
    if not recommend:
        return False, None
    if isinstance(recommend, (int, np.integer)) and recommend > 0:
        return True, int(recommend)
    raise ValueError(f"recommend must be a positive int, True (unlimited) or falsy (off), got {recommend!r}")


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
