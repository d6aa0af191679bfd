"""Batch recommendation over Spark: pandas UDFs that score with the model inside each Python worker.

The model travels as a :class:`~spark_recs.models.base.Payload` (state-dict bytes + JSON config)
captured by the UDF, so the same code runs on classic Spark and on Spark Connect (no
``sparkContext``). Top-k happens inside the worker, one score matrix per chunk of queries.
Ties are broken deterministically: higher score first, then the lower item index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame

from spark_recs.data.schema import require_columns
from spark_recs.models.base import Model, Payload


def as_payload(algo: Model | Payload | str | Path) -> Payload:
    """A fitted model, a :class:`Payload`, or a directory written by ``Model.save``, as a payload."""
    if isinstance(algo, Payload):
        return algo
    if isinstance(algo, Model):
        return algo.payload()
    return Model.load(algo).payload()


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best items per row as ``(items, scores)``, ordered by score desc then item index asc.

    Exact under ties: every item scoring above the k-th score is kept, and of those tied with it the
    lowest indices fill the remaining places.
    """
    rows, n_items = scores.shape
    k = min(k, n_items)
    if k == 0 or rows == 0:
        return torch.empty(rows, 0, dtype=torch.long), torch.empty(rows, 0, dtype=scores.dtype)
    threshold = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > threshold
    tied = scores == threshold
    room = k - above.sum(dim=1, keepdim=True)
    keep = above | (tied & (torch.cumsum(tied, dim=1) <= room))
    items = keep.nonzero()[:, 1].view(rows, k)
    picked = torch.gather(scores, 1, items)
    order = torch.sort(picked, dim=1, descending=True, stable=True).indices
    return torch.gather(items, 1, order), torch.gather(picked, 1, order)


def _threads(num_threads: int | None) -> int:
    return num_threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)


def recommend_sessions(
    algo: Model | Payload | str | Path,
    events: DataFrame,
    n: int | None = 20,
    every_prefix: bool = False,
    *,
    session_key: str = "SessionId",
    item_key: str = "ItemId",
    time_key: str = "Time",
    batch_size: int = 512,
    num_threads: int | None = None,
    partitions: int | None = None,
) -> DataFrame:
    """Next-item recommendations for each session of ``events`` (item column = dense item indices).

    Returns ``session_key, position, rank, item, score``: after the session's last event
    (``position`` = session length) or, with ``every_prefix``, after each of its events
    (``position`` = number of events seen). A session is never split across partitions; its
    events are ordered by time, then item.
    """
    require_columns(events, [session_key, item_key, time_key], "events")
    payload = as_payload(algo)
    spark = events.sparkSession
    parts = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    ordered = (
        events.select(session_key, item_key, time_key)
        .repartition(parts, session_key)
        .sortWithinPartitions(session_key, time_key, item_key)
    )
    session_type = dict(events.dtypes)[session_key]
    schema = f"`{session_key}` {session_type}, position int, rank int, item long, score float"

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        torch.set_num_threads(_threads(num_threads))
        model = payload.restore()
        k = n or model.n_items
        pending = pd.DataFrame()
        for frame in frames:
            # A session may continue into the next Arrow batch: hold its rows back until it is complete.
            buffer = pd.concat([pending, frame]) if len(pending) else frame
            if buffer.empty:
                continue
            tail = buffer[session_key].to_numpy() == buffer[session_key].iloc[-1]
            pending = buffer[tail]
            yield from _score_sessions(
                model, buffer[~tail], session_key, item_key, k, every_prefix, batch_size
            )
        yield from _score_sessions(model, pending, session_key, item_key, k, every_prefix, batch_size)

    return ordered.mapInPandas(run, schema)


def _score_sessions(
    model, frame, session_key, item_key, k, every_prefix, batch_size
) -> Iterator[pd.DataFrame]:
    if frame.empty:
        return
    sessions = frame[session_key].to_numpy()
    items = frame[item_key].to_numpy(dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]])
    bounds = np.r_[starts, len(items)]
    for first in range(0, len(starts), batch_size):
        chunk = range(first, min(first + batch_size, len(starts)))
        seqs = [items[bounds[i] : bounds[i + 1]] for i in chunk]
        with torch.no_grad():
            scores = model.score_sessions(seqs, every_prefix=every_prefix)
        recs, values = top_k(scores, k)
        lengths = np.array([len(s) for s in seqs])
        if every_prefix:
            ids = np.repeat(sessions[starts[list(chunk)]], lengths)
            positions = np.concatenate([np.arange(1, length + 1) for length in lengths])
        else:
            ids, positions = sessions[starts[list(chunk)]], lengths
        width = recs.shape[1]
        yield pd.DataFrame(
            {
                session_key: np.repeat(ids, width),
                "position": np.repeat(positions, width).astype(np.int32),
                "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), len(ids)),
                "item": recs.reshape(-1).numpy(),
                "score": values.reshape(-1).numpy().astype(np.float32),
            }
        )
