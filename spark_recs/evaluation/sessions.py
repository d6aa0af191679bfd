"""Next-item evaluation of session models (GRU4Rec's ``batch_eval``): Recall@N and MRR@N with tie modes.

For every event of every test session except its last (events in time order, ties by item id), the
model (hidden state carried through the session, reset between sessions, no dropout) scores all training
items and the next event's item is the target. Test events on items unknown to the model are dropped
first (and counted).

Ranks of one target, with ``higher``/``equal`` the numbers of items scoring strictly higher / equal
(the target itself included in ``equal``):

- ``standard``: ``higher + 1``
- ``conservative``: ``higher + equal``
- ``median``: ``higher + (equal - 1) / 2 + 1``

Recall@N is the share of targets with rank <= N; MRR@N the mean of 1/rank, counting 0 when rank > N,
averaged over all predictions (not per session). ``RankCounts`` keeps integer counts per (doubled) rank,
so partial results from shards merge into exactly the single-process numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame as SparkDataFrame

from spark_recs.transport import ship, task_threads

MODES = ("standard", "conservative", "median")
log = logging.getLogger(__name__)


def _count(compare, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per row, how many scores ``compare`` true against the row's target score."""
    # Counting 0/1 floats is several times faster than summing a bool tensor; exact below 2**24 items.
    dtype = torch.float32 if scores.shape[1] < 2**24 else torch.float64
    flags = compare(scores, target, out=torch.empty(scores.shape, dtype=dtype, device=scores.device))
    return flags.sum(dim=1).double()


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, mode: str = "conservative") -> torch.Tensor:
    """Rank of each row's target item among all columns of ``scores`` (1 = best); float, halves in ``median``.

    ``scores`` is ``(n, n_items)``, ``targets`` the ``n`` target columns.
    """
    target = scores.gather(1, targets.reshape(-1, 1).to(scores.device))
    if mode == "standard":
        return _count(torch.gt, scores, target) + 1
    if mode == "conservative":
        return _count(torch.ge, scores, target)
    if mode == "median":
        higher, higher_or_equal = _count(torch.gt, scores, target), _count(torch.ge, scores, target)
        return higher + (higher_or_equal - higher - 1) / 2 + 1
    raise ValueError(f"unknown rank mode {mode!r}; expected one of {MODES}")


@dataclass
class RankCounts:
    """How many targets got each rank up to ``max_cutoff`` (in half steps), and how many targets in all."""

    max_cutoff: int
    counts: np.ndarray = field(default=None)
    n: int = 0

    def __post_init__(self):
        if self.counts is None:
            self.counts = np.zeros(2 * self.max_cutoff + 1, dtype=np.int64)

    def add(self, ranks, times=None) -> RankCounts:
        """Count more ranks (a tensor or array of ranks as returned by ``target_ranks``).

        ``times``: how many targets got each of ``ranks`` (default: one each).
        """
        doubled = np.rint(2 * np.asarray(torch.as_tensor(ranks).cpu(), dtype=np.float64)).astype(np.int64)
        times = np.ones(len(doubled), dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
        kept = doubled <= 2 * self.max_cutoff
        self.counts += np.bincount(doubled[kept], times[kept], len(self.counts)).astype(np.int64)
        self.n += int(times.sum())
        return self

    def merge(self, other: RankCounts) -> RankCounts:
        if other.max_cutoff != self.max_cutoff:
            raise ValueError("cannot merge rank counts with different max_cutoff")
        return RankCounts(self.max_cutoff, self.counts + other.counts, self.n + other.n)

    def recall(self, cutoff: int) -> float:
        return float(self.counts[: 2 * cutoff + 1].sum() / self.n) if self.n else 0.0

    def mrr(self, cutoff: int) -> float:
        doubled = np.arange(2, 2 * cutoff + 1)
        return float((self.counts[2 : 2 * cutoff + 1] * (2.0 / doubled)).sum() / self.n) if self.n else 0.0


@dataclass(frozen=True)
class SessionEvaluation:
    """Metrics per cutoff and the counts behind them."""

    recall: dict[int, float]
    mrr: dict[int, float]
    n_predictions: int
    n_sessions: int
    n_dropped_events: int


def prepare_test_sessions(gru, test_data: pd.DataFrame, session_key: str, item_key: str, time_key: str):
    """Item indices and session offsets of ``test_data`` after dropping unknown items, and how many were dropped."""
    missing = [c for c in (session_key, item_key, time_key) if c not in test_data.columns]
    if missing:
        raise ValueError(f"test data lacks column(s) {missing}; it has {list(test_data.columns)}")
    items = gru.item_indices(test_data[item_key].to_numpy())
    known = items >= 0
    if len(items) and not known.any():
        log.warning(
            "no test event is on an item the model knows (test ids %s): check that the item id types match",
            test_data[item_key].dtype,
        )
    # Ties in time go by item id (as in recommend_sessions): a Spark shard's rows come in no set order.
    data = test_data.loc[known, [session_key, time_key, item_key]].assign(_item=items[known])
    data = data.sort_values([session_key, time_key, item_key])
    codes = pd.factorize(data[session_key].to_numpy())[0]
    offsets = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [len(codes)]]).astype(np.int64)
    return data["_item"].to_numpy(np.int64), offsets, int((~known).sum())


def _rank_counts(gru, test_data: pd.DataFrame, max_cutoff, batch_size, mode, item_key, session_key, time_key):
    """The counts behind the metrics: ``(RankCounts, n_sessions, n_dropped_events)``."""
    items, offsets, n_dropped = prepare_test_sessions(gru, test_data, session_key, item_key, time_key)
    counts = RankCounts(max_cutoff)
    for scores, targets in gru.next_item_scores(items, offsets, batch_size=batch_size):
        counts.add(target_ranks(scores, targets, mode))
    n_sessions = int((np.diff(offsets) > 1).sum()) if len(items) else 0
    return counts, n_sessions, n_dropped


def _spark_rank_counts(
    gru, test_data: SparkDataFrame, max_cutoff, batch_size, mode, item_key, session_key, time_key, model_dir
):
    """:func:`_rank_counts` with the test sessions sharded over Spark workers and the counts merged.

    The model travels as in :mod:`spark_recs.transport` (on Spark Connect through a file in ``model_dir``);
    each shard holds whole sessions, and integer counts merge exactly, so the result equals the
    single-process one.
    """
    spark = test_data.sparkSession
    load, threads = ship(gru, gru, spark, model_dir), task_threads(spark, None)
    shards = int(test_data.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    columns = [session_key, item_key, time_key]

    def run(frames):
        frames = list(frames)  # an empty shard may deliver no batch at all (pysail)
        frame = pd.concat(frames) if frames else pd.DataFrame()
        if frame.empty:
            return
        torch.set_num_threads(threads)
        counts, n_sessions, n_dropped = _rank_counts(
            load(), frame, max_cutoff, batch_size, mode, item_key, session_key, time_key
        )
        yield pd.DataFrame(
            {
                "counts": [counts.counts.tolist()],
                "n": [counts.n],
                "sessions": [n_sessions],
                "dropped": [n_dropped],
            }
        )

    rows = (
        test_data.select(*columns)
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

    A Spark DataFrame is evaluated on the workers, sharded by session (see :func:`_spark_rank_counts`);
    on Spark Connect ``model_dir`` is a folder the workers can read (default: the work dir).
    """
    if mode not in MODES:
        raise ValueError(f"unknown rank mode {mode!r}; expected one of {MODES}")
    cutoffs = [int(c) for c in cutoff]
    args = (gru, test_data, max(cutoffs), batch_size, mode, item_key, session_key, time_key)
    if isinstance(test_data, SparkDataFrame):
        counts, n_sessions, n_dropped = _spark_rank_counts(*args, model_dir)
    else:
        counts, n_sessions, n_dropped = _rank_counts(*args)
    return SessionEvaluation(
        recall={c: counts.recall(c) for c in cutoffs},
        mrr={c: counts.mrr(c) for c in cutoffs},
        n_predictions=counts.n,
        n_sessions=n_sessions,
        n_dropped_events=n_dropped,
    )


def batch_eval(
    gru,
    test_data: pd.DataFrame | SparkDataFrame,
    cutoff=(20,),
    batch_size: int = 512,
    mode: str = "conservative",
    item_key: str = "ItemId",
    session_key: str = "SessionId",
    time_key: str = "Time",
) -> tuple[dict[int, float], dict[int, float]]:
    """GRU4Rec's evaluator: ``(recall, mrr)``, two dicts keyed by cutoff (see ``evaluate_sessions``)."""
    result = evaluate_sessions(gru, test_data, cutoff, batch_size, mode, item_key, session_key, time_key)
    return result.recall, result.mrr
