"""Metrics computed in Spark from recommendation lists (no collect of the lists to the driver)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def next_item_targets(
    events: DataFrame, *, session_key: str = "SessionId", item_key: str = "ItemId", time_key: str = "Time"
) -> DataFrame:
    """For every event but the last of its session: ``session_key, position, target`` (the next item).

    Events are ordered by time, then item, as in :func:`spark_recs.batch.recommend_sessions`.
    """
    window = Window.partitionBy(session_key).orderBy(time_key, item_key)
    return events.select(
        session_key,
        F.row_number().over(window).alias("position"),
        F.lead(item_key).over(window).alias("target"),
    ).where(F.col("target").isNotNull())


def next_item_metrics(
    recs: DataFrame, targets: DataFrame, cutoffs: list[int] = (20,), *, session_key: str = "SessionId"
) -> dict[str, float]:
    """Recall@N and MRR@N of next-item recommendation lists, averaged over all targets.

    ``recs`` holds ``session_key, position, rank, item`` (from ``recommend_sessions(every_prefix=True)``),
    ``targets`` ``session_key, position, target``. A target missing from its list counts as a miss
    (reciprocal rank 0); lists must be at least ``max(cutoffs)`` long for the figures to be exact.
    """
    hits = recs.select(session_key, "position", F.col("item").alias("target"), "rank")
    ranked = targets.join(hits, [session_key, "position", "target"], "left")
    aggs = []
    for n in cutoffs:
        hit = F.col("rank").isNotNull() & (F.col("rank") <= n)
        aggs.append(F.avg(hit.cast("double")).alias(f"recall@{n}"))
        aggs.append(F.avg(F.when(hit, 1.0 / F.col("rank")).otherwise(0.0)).alias(f"mrr@{n}"))
    aggs.append(F.count("*").alias("n_targets"))
    row = ranked.agg(*aggs).first().asDict()
    return {k: float(v) if v is not None else 0.0 for k, v in row.items()}
