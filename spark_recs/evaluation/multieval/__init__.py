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

:mod:`.plan` holds the algorithms, data sets and RunIds, :mod:`.store` the restartable folder,
:mod:`.runner` fits, scores and measures the runs and :mod:`.report` logs them to MLflow.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession

from spark_recs.evaluation.multieval.plan import Plan
from spark_recs.evaluation.multieval.report import Report
from spark_recs.evaluation.multieval.runner import BEYOND_COLUMNS, Runner, topn_analysis
from spark_recs.evaluation.multieval.store import Store

__all__ = ["MultiEval"]


class MultiEval:
    """Evaluate many algorithms on many data sets (LensKit's ``MultiEval``) with Spark batch scoring and
    MLflow tracking.

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
    :data:`.runner.DEFAULT_METRICS`). ``seed``: Python, NumPy and torch are seeded from ``(seed, RunId)``
    before each fit (``None``: not seeded), so a run gives the same result in any job.
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
        analysis = topn_analysis(metrics)  # validated now, not in the middle of a run
        self._store = store = Store(path, [*analysis.metric_names, *BEYOND_COLUMNS], spark)
        self._report = Report(store, experiment, tracking_uri)
        options = (predict, recommend, candidates, save_models, eval_n_jobs, combine, seed)
        self._runner = Runner(store, self._report, analysis, *options)
        self._plan = Plan(reserved=store.columns)
        self.path = store.path

    def add_algorithms(self, algos, attrs=(), **kwargs) -> None:
        """Add one algorithm or a list of them. ``attrs``: attribute names whose values become runs-table
        columns; ``name=``: the ``AlgoStr`` label (default: the algorithm's ``repr``); any other keyword
        becomes a column with that value."""
        self._plan.add_algorithms(algos, attrs, **kwargs)

    def add_datasets(
        self, data, name: str | None = None, candidates=None, item_vectors=None, **kwargs
    ) -> None:
        """Add a data set: a ``(train, test)`` pair, an iterable of pairs (or of objects with ``.train``
        and ``.test``, as :func:`~spark_recs.data.split.partition_users` yields), or a function returning
        either (called when the runs are first listed). A side is a pandas or Spark DataFrame
        (``user, item[, rating, ...]``) or a table name / path (:func:`~spark_recs.data.io.read_table`).
        Each pair is a ``Partition``, numbered from 1. ``name`` (default ``"data"``) is the ``DataSet``
        column and must be unique; ``candidates`` overrides the evaluation's default for this data set;
        ``item_vectors`` (pandas ``item, vector``, e.g. :func:`~spark_recs.data.movielens.genre_vectors`,
        or a function returning it) adds each run's ``diversity@10``; other keywords become runs-table
        columns."""
        self._plan.add_datasets(data, name, candidates, item_vectors, **kwargs)

    def persist_data(self, overwrite: bool = False) -> None:
        """Write every data set's partitions to ``data/<DataSet>/<Partition>/{train,test}`` (Parquet) and
        read them from there from now on, so later runs (other jobs) need not recompute the splits.

        A data set already persisted in this folder (its ``_manifest.json`` exists) is reused without
        evaluating its source, unless ``overwrite``."""
        self._store.persist(self._plan.datasets, overwrite)

    def run_count(self) -> int:
        """The number of runs: partitions of all data sets x algorithms."""
        return len(self._plan.runs())

    def planned_runs(self) -> pd.DataFrame:
        """The runs this evaluation defines (``RunId, DataSet, Partition, AlgoClass, AlgoStr`` and the
        attrs/extra columns), whether run or not."""
        return pd.DataFrame([r.describe() for r in self._plan.runs()])

    def run(self, runs=None, progress=None) -> None:
        """Run every run, or only ``runs`` (a 1-based RunId, a list of them, or strings naming ranges and
        slices: ``"1-4"``, ``"2/4"``, see :func:`.plan.run_ids`), in RunId order, skipping those already
        recorded ok. ``progress``: one line per finished run to stderr (its status and
        times, and how many are left); ``False``: none.

        Nested MLflow runs of the selected RunIds left ``RUNNING`` by an earlier, killed call are ended
        ``KILLED`` first (only those started before this call: a RunId is run by one job at a time, as
        for the leftovers on disk)."""
        self._runner.run(*self._plan.select(runs), progress)

    def parent_run(self) -> str:
        """The id of the evaluation's MLflow parent run, created on first use (a job's planning task
        creates it, so the tasks fanned out after it share it)."""
        with self._report.parent() as parent:
            return parent

    def collect_results(self) -> pd.DataFrame:
        """The runs table (one row per recorded run, by RunId) as a pandas DataFrame: ``RunId, DataSet,
        Partition, AlgoClass, AlgoStr``, the attrs and extra columns, ``TrainTime, PredTime, RecTime``,
        ``status, error``, the metrics and counts, and ``MLflowRunId``."""
        return self._store.results()

    def recommendations(self) -> SparkDataFrame:
        """Every ok run's recommendations: ``user, rank, item, score, RunId`` (Spark, lazy)."""
        return self._store.table("recommendations")

    def predictions(self) -> SparkDataFrame:
        """Every ok run's predictions: the test columns, ``prediction`` and ``RunId`` (Spark, lazy)."""
        return self._store.table("predictions")

    def combine_outputs(self) -> pd.DataFrame:
        """Rebuild ``runs.csv`` and the plots from the records and log them to the parent MLflow run
        (what :meth:`run` does at its end with ``combine=True``); returns the runs table."""
        with self._report.parent():
            self._report.summary()
        return self.collect_results()
