"""What a MultiEval evaluates: its algorithms, its data sets and the runs they make.

Every partition of every data set meets every algorithm. ``RunId`` counts from 1 with the data sets (and
their partitions) outer and the algorithms inner, in the order they were added; ids are stable as long as
the same data sets and algorithms are added in the same order (so a fan-out job can run ``run(runs=[i])``
for its own ``i``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import SparkSession

from spark_recs.data.io import read_table
from spark_recs.models.base import Recommender
from spark_recs.runtime import get_spark

KEY_COLUMNS = ("RunId", "DataSet", "Partition", "AlgoClass", "AlgoStr")


@dataclass
class Algorithm:
    """An added algorithm: the template model, its runs-table columns and label."""

    algo: Recommender
    columns: dict  # attrs and extra keyword columns, in the runs table
    label: str  # AlgoStr


@dataclass
class DataSet:
    """An added data set: its name, source, candidate sets, runs-table columns and item vectors."""

    name: str
    source: object
    candidates: object
    columns: dict
    item_vectors: object = None  # pandas ``item, vector``, or a function returning it (or None)
    pairs: list | None = None  # (train, test) per partition, resolved on first need

    def partitions(self) -> list[tuple]:
        """The ``(train, test)`` pairs, the source called (if a function) and checked on first need."""
        if self.pairs is None:
            source = self.source() if callable(self.source) else self.source
            if _is_side(source):
                raise TypeError(f"data set {self.name!r}: give a (train, test) pair, not a single table")
            pairs = []
            for item in [source] if _is_pair(source) else source:
                if _is_pair(item):
                    pairs.append(tuple(item))
                elif hasattr(item, "train") and hasattr(item, "test") and not _is_side(item):
                    pairs.append((item.train, item.test))
                else:
                    kind = type(item).__name__
                    raise TypeError(f"data set {self.name!r}: expected (train, test) pairs, got {kind}")
            if not pairs:
                raise ValueError(f"data set {self.name!r} has no (train, test) pairs")
            self.pairs = pairs
        return self.pairs

    def vectors(self):
        """The item vectors (``item, vector``) or None, the function called on first need."""
        if callable(self.item_vectors):
            self.item_vectors = self.item_vectors()
        return self.item_vectors


@dataclass(frozen=True, eq=False)
class Run:
    """One algorithm on one partition of one data set."""

    id: int
    dataset: DataSet
    partition: int
    algorithm: Algorithm
    label: str  # the algorithm's name in plots

    def describe(self) -> dict:
        """The run's runs-table columns: ``RunId, DataSet, Partition, AlgoClass, AlgoStr``, attrs/extra."""
        algo = self.algorithm
        keys = (self.id, self.dataset.name, self.partition, type(algo.algo).__name__, algo.label)
        return dict(zip(KEY_COLUMNS, keys)) | algo.columns | self.dataset.columns


class Plan:
    """The algorithms and data sets added so far; ``reserved``: column names they may not use."""

    def __init__(self, reserved: Collection[str]) -> None:
        self.reserved = set(reserved)
        self.algorithms: list[Algorithm] = []
        self.datasets: list[DataSet] = []

    def add_algorithms(self, algos, attrs=(), *, name=None, **kwargs) -> None:
        """See :meth:`MultiEval.add_algorithms`."""
        algos = [algos] if isinstance(algos, Recommender) or not isinstance(algos, Iterable) else list(algos)
        attrs = [attrs] if isinstance(attrs, str) else list(attrs)
        self._check_columns([*attrs, *kwargs], "add_algorithms")
        extra = {k: plain(v) for k, v in kwargs.items()}
        for algo in algos:
            if not isinstance(algo, Recommender):
                kind = type(algo).__name__
                raise TypeError(f"MultiEval runs user models (spark_recs Recommender subclasses), not {kind}")
            columns = {a: plain(getattr(algo, a, None)) for a in attrs} | extra
            self.algorithms.append(Algorithm(algo, columns, str(name) if name is not None else repr(algo)))

    def add_datasets(self, data, name=None, candidates=None, item_vectors=None, **kwargs) -> None:
        """See :meth:`MultiEval.add_datasets`."""
        name = "data" if name is None else str(name)
        if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\"):
            raise ValueError(f"data set name {name!r} must be a plain folder name (no '/', not hidden)")
        if any(d.name == name for d in self.datasets):
            raise ValueError(f"a data set named {name!r} was already added; pass a different name=")
        self._check_columns(list(kwargs), "add_datasets")
        columns = {k: plain(v) for k, v in kwargs.items()}
        self.datasets.append(DataSet(name, data, candidates, columns, item_vectors))

    def _check_columns(self, names, where: str) -> None:
        clash = sorted(set(names) & self.reserved) + [n for n in names if str(n).startswith("_")]
        if clash:
            raise ValueError(f"{where}: column name(s) {clash} are reserved for MultiEval's own columns")

    def runs(self) -> list[Run]:
        """Every run, in RunId order."""
        labels = [self._label(i) for i in range(len(self.algorithms))]
        runs: list[Run] = []
        for ds in self.datasets:
            for partition in range(1, len(ds.partitions()) + 1):
                for algo, label in zip(self.algorithms, labels):
                    runs.append(Run(len(runs) + 1, ds, partition, algo, label))
        return runs

    def select(self, runs=None) -> tuple[list[Run], set[int] | None]:
        """The runs ``runs`` names (see :func:`run_ids`; ``None``: all) and their ids (``None``: all)."""
        plan = self.runs()
        if runs is None:
            return plan, None
        wanted = run_ids(runs, len(plan))
        unknown = sorted(wanted - {r.id for r in plan})
        if unknown:
            raise ValueError(f"no run(s) {unknown}: this evaluation has RunIds 1..{len(plan)}")
        return [r for r in plan if r.id in wanted], wanted

    def _label(self, index: int) -> str:
        """AlgoStr, plus the attrs/extra columns when several algorithms share it (then the index too)."""
        algo = self.algorithms[index]
        same = [a for a in self.algorithms if a.label == algo.label]
        if len(same) == 1:
            return algo.label
        details = ", ".join(f"{k}={v}" for k, v in algo.columns.items())
        label = f"{algo.label} ({details})" if details else algo.label
        twins = [a for a in same if a.columns == algo.columns]
        return label if len(twins) == 1 else f"{label} #{index + 1}"


_SELECTION = re.compile(r"^(?:(?P<id>\d+)|(?P<low>\d+)-(?P<high>\d+)|(?P<k>\d+)/(?P<n>\d+))$")


def run_ids(runs, count: int) -> set[int]:
    """The RunIds a selection names among ``count`` runs. ``runs``: a RunId, or a list of RunIds and
    strings, each string comma-separated parts: ``"3"``, a range ``"1-4"`` or a slice ``"k/n"``, the k-th
    of n contiguous slices of the plan (sizes differ by at most one; one may be empty when n > count),
    what a fan-out job gives each of its n tasks."""
    if isinstance(runs, (int, np.integer, str)):
        runs = [runs]
    wanted: set[int] = set()
    for item in runs:
        if isinstance(item, (int, np.integer)):
            wanted.add(int(item))
            continue
        for part in str(item).split(","):
            match = _SELECTION.match(part.strip())
            if match is None:
                raise ValueError(f"runs: {part!r} is not a RunId (3), a range (1-4) or a slice (2/4)")
            if match["id"]:
                wanted.add(int(match["id"]))
            elif match["low"]:
                wanted |= set(range(int(match["low"]), int(match["high"]) + 1))
            else:
                k, n = int(match["k"]), int(match["n"])
                if not 1 <= k <= n:
                    raise ValueError(f"runs: slice {part!r} needs 1 <= k <= n")
                wanted |= set(range((k - 1) * count // n + 1, k * count // n + 1))
    return wanted


def session(spark: SparkSession | None, *frames) -> SparkSession:
    """``spark``, else the session of the first Spark DataFrame among ``frames``, the active one or
    :func:`~spark_recs.runtime.get_spark`."""
    if spark is not None:
        return spark
    for frame in frames:
        if isinstance(frame, SparkDataFrame):
            return frame.sparkSession
    return SparkSession.getActiveSession() or get_spark()


def to_spark(frame, spark: SparkSession) -> SparkDataFrame:
    """A data set side as Spark: a Spark DataFrame as it is, a pandas one converted, a table name/path read."""
    if isinstance(frame, SparkDataFrame):
        return frame
    return spark.createDataFrame(frame) if isinstance(frame, pd.DataFrame) else read_table(spark, str(frame))


def plain(value):
    """A value fit for a JSON record and a CSV cell (numpy scalars to Python, tuples to lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _is_side(value) -> bool:
    return isinstance(value, (pd.DataFrame, SparkDataFrame, str, os.PathLike))


def _is_pair(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_side(s) for s in value)
