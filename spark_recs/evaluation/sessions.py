"""Next-item evaluation of session models (GRU4Rec's ``batch_eval``): Recall@N and MRR@N over all
predictions (not per session), in process or sharded over Spark workers; the targets, their exact ranks
(tie modes) and the counts behind the metrics are those of :mod:`spark_recs.core.ranking`.

Given the training sessions, also the beyond-accuracy figures of the top N after every event, for each
N (:func:`~spark_recs.evaluation.beyond.exposure_metrics`: coverage, Gini of exposure, novelty,
popularity, personalisation): every prediction is a list, every training session a user, and the
per-item counts are integers merged across shards exactly, like the ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import functions as F

from spark_recs.core.ranking import RankCounts as RankCounts
from spark_recs.core.ranking import check_tie_mode, session_rank_counts
from spark_recs.core.ranking import target_ranks as target_ranks
from spark_recs.data.io import collect_columns
from spark_recs.models.topn import top_k
from spark_recs.serving.transport import ship, task_threads

from .beyond import exposure_metrics


@dataclass(frozen=True)
class SessionEvaluation:
    """Metrics per cutoff and the counts behind them; ``beyond``: the beyond-accuracy figures per cutoff
    (``coverage@20``, ...), when the training sessions were given."""

    recall: dict[int, float]
    mrr: dict[int, float]
    n_predictions: int
    n_sessions: int
    n_dropped_events: int
    beyond: dict[str, float] = field(default_factory=dict)


class Exposure:
    """For each cutoff N, how many predictions put each item (model index) in their top N, the ties
    broken by index (:func:`~spark_recs.models.topn.top_k`); called with every batch of scores."""

    def __init__(self, cutoffs) -> None:
        self.cutoffs = sorted(set(cutoffs))
        self.counts = np.zeros((len(self.cutoffs), 0), dtype=np.int64)

    def __call__(self, scores: torch.Tensor) -> None:
        top = top_k(scores, self.cutoffs[-1])[0].numpy()
        width = max(self.counts.shape[1], scores.shape[1])
        found = np.stack([np.bincount(top[:, :c].ravel(), minlength=width) for c in self.cutoffs])
        self.add(found)

    def add(self, counts: np.ndarray) -> None:
        """Add counts of the same cutoffs (another shard's)."""
        width = max(self.counts.shape[1], counts.shape[1])
        self.counts = np.pad(self.counts, ((0, 0), (0, width - self.counts.shape[1])))
        self.counts += np.pad(counts, ((0, 0), (0, width - counts.shape[1]))).astype(np.int64)


def _spark_rank_counts(
    gru,
    test_data: SparkDataFrame,
    cutoffs,
    batch_size,
    mode,
    item_key,
    session_key,
    time_key,
    model_dir,
    beyond,
):
    """:func:`~spark_recs.core.ranking.session_rank_counts` over shards of whole sessions on the Spark workers
    (the model shipped by :func:`~spark_recs.serving.transport.ship`), the integer counts merged exactly;
    with ``beyond``, the shards' :class:`Exposure` counts too."""
    spark = test_data.sparkSession
    load, threads = ship(gru, gru, spark, model_dir), task_threads(spark, None)
    shards = int(spark.conf.get("spark.sql.shuffle.partitions"))
    max_cutoff = max(cutoffs)

    def run(frames):
        frames = list(frames)  # an empty shard may deliver no batch at all (pysail)
        frame = pd.concat(frames) if frames else pd.DataFrame()
        if frame.empty:
            return
        torch.set_num_threads(threads)
        exposure = Exposure(cutoffs) if beyond else None
        counts, n_sessions, n_dropped = session_rank_counts(
            load(), frame, max_cutoff, batch_size, mode, item_key, session_key, time_key, observe=exposure
        )
        exposed = [] if exposure is None else exposure.counts.ravel().tolist()
        yield pd.DataFrame(
            {
                "counts": [counts.counts.tolist()],
                "n": counts.n,
                "sessions": n_sessions,
                "dropped": n_dropped,
                "exposure": [exposed],
            }
        )

    rows = (
        test_data.select(session_key, item_key, time_key)
        .repartition(shards, session_key)
        .mapInPandas(run, "counts array<long>, n long, sessions long, dropped long, exposure array<long>")
        .collect()
    )
    total, exposure = RankCounts(max_cutoff), Exposure(cutoffs) if beyond else None
    for row in rows:
        total = total.merge(RankCounts(max_cutoff, np.asarray(row["counts"], dtype=np.int64), row["n"]))
        if exposure is not None and row["exposure"]:
            exposure.add(np.asarray(row["exposure"], dtype=np.int64).reshape(len(exposure.cutoffs), -1))
    return total, sum(r["sessions"] for r in rows), sum(r["dropped"] for r in rows), exposure


def training_popularity(gru, train, n_items: int, item_key: str, session_key: str) -> tuple[np.ndarray, int]:
    """Per item index of ``gru`` (``n_items`` of them), its distinct ``train`` sessions (pandas or Spark),
    and the number of training sessions; training items the model does not know are left out."""
    if isinstance(train, SparkDataFrame):
        pairs = train.select(session_key, item_key).distinct()
        per_item = collect_columns(pairs.groupBy(item_key).agg(F.count(F.lit(1)).alias("n")), [item_key, "n"])
        n_sessions = pairs.select(session_key).distinct().count()
    else:
        pairs = train[[session_key, item_key]].drop_duplicates()
        per_item = pairs.groupby(item_key).size().rename("n").reset_index()
        n_sessions = pairs[session_key].nunique()
    indices = gru.item_indices(per_item[item_key].to_numpy())
    known = indices >= 0
    popularity = np.zeros(n_items, dtype=np.int64)
    popularity[indices[known]] = per_item["n"].to_numpy()[known]
    return popularity, int(n_sessions)


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
    train: pd.DataFrame | SparkDataFrame | None = None,
) -> SessionEvaluation:
    """Next-item Recall@N and MRR@N of ``gru`` on ``test_data`` for each N in ``cutoff``, with the counts;
    given the ``train`` sessions, the beyond-accuracy figures of the top N too (``beyond``).

    A Spark DataFrame is evaluated on the workers, sharded by session; on Spark Connect ``model_dir`` is a
    folder the workers can read (default: the work dir).
    """
    check_tie_mode(mode)
    cutoffs = [int(c) for c in cutoff]
    args = (gru, test_data, cutoffs, batch_size, mode, item_key, session_key, time_key)
    if isinstance(test_data, SparkDataFrame):
        counts, n_sessions, n_dropped, exposure = _spark_rank_counts(*args, model_dir, train is not None)
    else:
        exposure = Exposure(cutoffs) if train is not None else None
        counts, n_sessions, n_dropped = session_rank_counts(
            gru, test_data, max(cutoffs), batch_size, mode, item_key, session_key, time_key, observe=exposure
        )
    beyond = {}
    if exposure is not None and counts.n:
        width = exposure.counts.shape[1]
        popularity, n_users = training_popularity(gru, train, width, item_key, session_key)
        for c, exposed in zip(exposure.cutoffs, exposure.counts):
            beyond |= exposure_metrics(popularity, exposed, counts.n, n_users, c)
    return SessionEvaluation(
        recall={c: counts.recall(c) for c in cutoffs},
        mrr={c: counts.mrr(c) for c in cutoffs},
        n_predictions=counts.n,
        n_sessions=n_sessions,
        n_dropped_events=n_dropped,
        beyond=beyond,
    )


def batch_eval(gru, test_data, *args, **kwargs) -> tuple[dict[int, float], dict[int, float]]:
    """GRU4Rec's evaluator: ``(recall, mrr)``, two dicts keyed by cutoff, of :func:`evaluate_sessions` with
    the same arguments."""
    result = evaluate_sessions(gru, test_data, *args, **kwargs)
    return result.recall, result.mrr
