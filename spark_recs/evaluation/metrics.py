"""Metrics computed in Spark from recommendation lists (no collect of the lists to the driver)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from spark_recs.core.ranking import RankCounts


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
    (reciprocal rank 0); lists must be at least ``max(cutoffs)`` long for the figures to be exact. Spark
    counts the targets per rank and the figures come from those integers (:class:`RankCounts`), so they
    are the same to the last bit on any engine and partitioning (a sum of ``1 / rank`` in Spark is not).
    """
    keys = [session_key, "position", "target"]
    hits = recs.select(session_key, "position", F.col("item").alias("target"), "rank")
    per_target = (
        targets.join(hits, keys, "left")
        .groupBy(*keys)
        .agg(F.min("rank").alias("rank"), F.count("rank").alias("found"))
    )
    beyond = F.lit(max(cutoffs) + 1)  # misses and ranks past every cutoff: one group
    rows = (
        per_target.groupBy(F.least(F.coalesce(F.col("rank"), beyond), beyond).alias("rank"))
        .agg(F.count("*").alias("targets"), F.count(F.when(F.col("found") > 1, 1)).alias("repeated"))
        .collect()
    )
    repeated = sum(r["repeated"] for r in rows)
    if repeated:
        raise ValueError(
            f"recs: {repeated:,} target(s) appear more than once in their ({session_key}, position) list; "
            f"a list holds each item once: check recs for duplicated lists (one row per {session_key}, "
            "position and rank)"
        )
    counts = RankCounts(max(cutoffs)).add([r["rank"] for r in rows], [r["targets"] for r in rows])
    metrics = {}
    for n in cutoffs:
        metrics |= {f"recall@{n}": counts.recall(n), f"mrr@{n}": counts.mrr(n)}
    return metrics | {"n_targets": float(counts.n)}
