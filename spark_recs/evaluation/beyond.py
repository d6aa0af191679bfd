"""Beyond-accuracy metrics of top-k lists, in pandas and in Spark with the same numbers.

:func:`beyond_accuracy` measures one list per user (``user, item, rank``; rank 1 the best) against the
training interactions (``user, item``): catalogue coverage, the Gini index of item exposure, novelty,
average recommendation popularity and personalisation, all at a cut-off ``k``, and, given item vectors,
intra-list diversity. The formulas and their references are in :mod:`spark_recs.core.ranking`.

All but diversity follow from one small table, :func:`item_exposure` (per item: its training users and
the lists recommending it), aggregated by Spark and collected (one row per item) or by pandas: its
integers are the same on any engine, so are the metrics. Diversity is computed per list by the same
NumPy function (a pandas UDF on Spark) and averaged in ascending order, so it is the same bits too.
"""

from __future__ import annotations

import functools
import operator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import functions as F

from spark_recs.core import ranking
from spark_recs.data.io import collect_columns

from .ordered import ordered_mean

#: What :func:`beyond_accuracy` returns, with ``@k`` (``diversity`` only with item vectors).
BEYOND_METRICS = ("coverage", "gini", "novelty", "popularity", "personalisation", "diversity")


def item_exposure(recs, train, k: int, *, user: str = "user", item: str = "item", rank: str = "rank"):
    """``(items, n_lists, n_users)``: per item of the training data or of a top-``k`` list, ``item``,
    ``popularity`` (its distinct training users) and ``exposure`` (the lists with it in their top ``k``),
    sorted by item; the number of lists and of training users. ``recs`` and ``train`` are each pandas or
    Spark (each side is counted where it is); the result is pandas."""
    if isinstance(recs, SparkDataFrame):
        cut = recs.where(F.col(rank) <= k).select(user, item).distinct()
        exposed = collect_columns(
            cut.groupBy(item).agg(F.count(F.lit(1)).alias("exposure")), [item, "exposure"]
        )
        n_lists = cut.select(user).distinct().count()
    else:
        cut = recs.loc[recs[rank] <= k, [user, item]].drop_duplicates()
        exposed = cut.groupby(item).size().rename("exposure").reset_index()
        n_lists = cut[user].nunique()
    if isinstance(train, SparkDataFrame):
        pairs = train.select(user, item).distinct()
        counts = collect_columns(
            pairs.groupBy(item).agg(F.count(F.lit(1)).alias("popularity")), [item, "popularity"]
        )
        n_users = pairs.select(user).distinct().count()
    else:
        pairs = train[[user, item]].drop_duplicates()
        counts = pairs.groupby(item).size().rename("popularity").reset_index()
        n_users = pairs[user].nunique()
    items = counts.merge(exposed, on=item, how="outer").fillna({"popularity": 0, "exposure": 0})
    items = items.astype({"popularity": "int64", "exposure": "int64"})
    return items.sort_values(item, ignore_index=True), int(n_lists), int(n_users)


def beyond_accuracy(
    recs,
    train,
    k: int,
    *,
    item_vectors: pd.DataFrame | None = None,
    user: str = "user",
    item: str = "item",
    rank: str = "rank",
) -> dict[str, float]:
    """``coverage@k``, ``gini@k``, ``novelty@k``, ``popularity@k``, ``personalisation@k`` and, with
    ``item_vectors`` (``item`` and a ``vector`` column of equal-length arrays), ``diversity@k`` of the
    top-``k`` lists ``recs`` against the ``train`` interactions (each pandas or Spark, alike).

    The catalogue is the training items: coverage and Gini count only them, and novelty and popularity
    leave out recommended items without training users; items without a vector are left out of their
    list's diversity, and lists with fewer than two such items out of the mean.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    items, n_lists, n_users = item_exposure(recs, train, k, user=user, item=item, rank=rank)
    popularity, exposure = items["popularity"].to_numpy(), items["exposure"].to_numpy()
    metrics = exposure_metrics(popularity, exposure, n_lists, n_users, k)
    if item_vectors is not None:
        metrics[f"diversity@{k}"] = _diversity(recs, item_vectors, k, user, item, rank)
    return metrics


def exposure_metrics(
    popularity: np.ndarray, exposure: np.ndarray, n_lists: int, n_users: int, k: int
) -> dict[str, float]:
    """``coverage@k``, ``gini@k``, ``novelty@k``, ``popularity@k`` and ``personalisation@k`` from integer
    counts aligned by item: ``popularity`` (training users), ``exposure`` (top-``k`` lists holding it), of
    ``n_lists`` lists and ``n_users`` training users. The catalogue is the items with training users."""
    known = popularity > 0
    shown, users = exposure[known], popularity[known]
    return {
        f"coverage@{k}": ranking.coverage(shown),
        f"gini@{k}": ranking.gini(shown),
        f"novelty@{k}": ranking.exposure_mean(shown, ranking.self_information(users, n_users)),
        f"popularity@{k}": ranking.exposure_mean(shown, users),
        f"personalisation@{k}": ranking.personalisation(exposure, n_lists, k),
    }


def _list_distances(vectors: dict, user: str, item: str, rank: str):
    """The pandas function of one user's list: its intra-list distance (NaN: under two vectors)."""

    def distance(rows: pd.DataFrame) -> pd.DataFrame:
        ordered = rows.sort_values([rank, item])
        found = [vectors[i] for i in ordered[item] if i in vectors]
        value = ranking.intra_list_distance(np.array(found)) if found else float("nan")
        return pd.DataFrame({user: rows[user].iloc[:1].to_numpy(), "distance": [value]})

    return distance


def _diversity(recs, item_vectors: pd.DataFrame, k: int, user: str, item: str, rank: str) -> float:
    vectors = dict(zip(item_vectors[item], (np.asarray(v, dtype=np.float64) for v in item_vectors["vector"])))
    distance = _list_distances(vectors, user, item, rank)
    if isinstance(recs, SparkDataFrame):
        cut = recs.where(F.col(rank) <= k).select(user, item, rank)
        schema = f"`{user}` {cut.schema[user].dataType.simpleString()}, distance double"
        per_list = cut.groupBy(user).applyInPandas(distance, schema).where(~F.isnan("distance"))
        value = per_list.agg(ordered_mean(F.col("distance")).alias("mean")).first()["mean"]
        return float("nan") if value is None else float(value)
    cut = recs.loc[recs[rank] <= k, [user, item, rank]]
    values = [distance(rows)["distance"].iloc[0] for _, rows in cut.groupby(user, sort=False)]
    values = sorted(v for v in values if not np.isnan(v))
    return functools.reduce(operator.add, values, 0.0) / len(values) if values else float("nan")
