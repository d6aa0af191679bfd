"""Next-item evaluation of session models (GRU4Rec's ``batch_eval``): Recall@N and MRR@N over all
predictions (not per session), in process or sharded over Spark workers; the targets, their exact ranks
(tie modes) and the counts behind the metrics are those of :mod:`spark_recs.core.ranking`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame as SparkDataFrame

from spark_recs.core.ranking import RankCounts as RankCounts
from spark_recs.core.ranking import check_tie_mode, session_rank_counts
from spark_recs.core.ranking import target_ranks as target_ranks
from spark_recs.serving.transport import ship, task_threads


@dataclass(frozen=True)
class SessionEvaluation:
    """Metrics per cutoff and the counts behind them."""

    recall: dict[int, float]
    mrr: dict[int, float]
    n_predictions: int
    n_sessions: int
    n_dropped_events: int


def _spark_rank_counts(
    gru, test_data: SparkDataFrame, max_cutoff, batch_size, mode, item_key, session_key, time_key, model_dir
):
    """:func:`~spark_recs.core.ranking.session_rank_counts` over shards of whole sessions on the Spark workers
    (the model shipped by :func:`~spark_recs.serving.transport.ship`), the integer counts merged exactly."""
    spark = test_data.sparkSession
    load, threads = ship(gru, gru, spark, model_dir), task_threads(spark, None)
    shards = int(spark.conf.get("spark.sql.shuffle.partitions"))

    def run(frames):
        frames = list(frames)  # an empty shard may deliver no batch at all (pysail)
        frame = pd.concat(frames) if frames else pd.DataFrame()
        if frame.empty:
            return
        torch.set_num_threads(threads)
        counts, n_sessions, n_dropped = session_rank_counts(
            load(), frame, max_cutoff, batch_size, mode, item_key, session_key, time_key
        )
        yield pd.DataFrame(
            {"counts": [counts.counts.tolist()], "n": counts.n, "sessions": n_sessions, "dropped": n_dropped}
        )

    rows = (
        test_data.select(session_key, item_key, time_key)
        .repartition(shards, session_key)
        .mapInPandas(run, "counts array<long>, n long, sessions long, dropped long")
        .collect()
    )
    total = RankCounts(max_cutoff)
    for row in rows:
        total = total.merge(RankCounts(max_cutoff, np.asarray(row["counts"], dtype=np.int64), row["n"]))
    return total, sum(r["sessions"] for r in rows), sum(r["dropped"] for r in rows)


def evaluate_sessions(
    gru,
    test_data: pd.DataFrame | SparkDataFrame,
    cutoff=(20,),
    batch_size: int = 512,
    mode: str = "conservative",
    item_key: str = "ItemId",
    session_key: str = "SessionId",
    time_key: str = "Time",
    *,
    model_dir: str | None = None,
) -> SessionEvaluation:
    """Next-item Recall@N and MRR@N of ``gru`` on ``test_data`` for each N in ``cutoff``, with the counts.

    A Spark DataFrame is evaluated on the workers, sharded by session; on Spark Connect ``model_dir`` is a
    folder the workers can read (default: the work dir).
    """
    check_tie_mode(mode)
    cutoffs = [int(c) for c in cutoff]
    args = (gru, test_data, max(cutoffs), batch_size, mode, item_key, session_key, time_key)
    if isinstance(test_data, SparkDataFrame):
        counts, n_sessions, n_dropped = _spark_rank_counts(*args, model_dir)
    else:
        counts, n_sessions, n_dropped = session_rank_counts(*args)
    return SessionEvaluation(
        recall={c: counts.recall(c) for c in cutoffs},
        mrr={c: counts.mrr(c) for c in cutoffs},
        n_predictions=counts.n,
        n_sessions=n_sessions,
        n_dropped_events=n_dropped,
    )


def batch_eval(gru, test_data, *args, **kwargs) -> tuple[dict[int, float], dict[int, float]]:
    """GRU4Rec's evaluator: ``(recall, mrr)``, two dicts keyed by cutoff, of :func:`evaluate_sessions` with
    the same arguments."""
    result = evaluate_sessions(gru, test_data, *args, **kwargs)
    return result.recall, result.mrr
