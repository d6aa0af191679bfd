"""Batch recommendation and prediction over Spark (LensKit's ``batch`` API, fanned out with pandas UDFs).

One mechanism serves every model: the fitted model travels to the Python workers as the bytes of its
saved file (tensors only, loaded with ``weights_only=True``) through ``sc.broadcast`` on classic Spark, or
as a file path loaded once per worker on Spark Connect (which has no ``sparkContext``). Each worker keeps
the restored model between tasks, sets ``torch.set_num_threads``, and scores one batch of users or
sessions at a time: one score matrix, the candidate mask and one exact top-k (score desc, then item id
asc) per batch. Nothing is collected to the driver; ``output=`` writes results straight to a table.

``algo`` is a fitted model, a saved model file, an MLflow model URI (``models:/name@alias``,
``runs:/id/model``) or what :func:`train_isolated` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import reduce

import numpy as np
import pandas as pd
import torch
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from spark_recs.data.io import read_table, write_table
from spark_recs.data.schema import require_columns
from spark_recs.models.base import Recommender, item_indices
from spark_recs.models.topn import recommend_frame, top_k
from spark_recs.models.vocabulary import Vocabulary
from spark_recs.runtime import get_spark
from spark_recs.serving.isolated import train_isolated as train_isolated
from spark_recs.serving.references import load_model
from spark_recs.serving.transport import ModelRef, ship, task_threads

log = logging.getLogger(__name__)

_CANDIDATES = "__candidates"
_ITEMS = "__items"


def _finish(result: DataFrame, output: str | None) -> DataFrame:
    if output is None:
        return result
    fmt = write_table(result, output)
    return read_table(result.sparkSession, output, format=fmt)


# ---- users ------------------------------------------------------------------------------------------


def _check_n(n) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"n must be a whole number of items >= 1, or None for every candidate; got {n!r}")


def _as_frame(values, column: str, spark: SparkSession | None, spark_type: str) -> DataFrame:
    if isinstance(values, DataFrame):
        return values
    # Ids given in memory: the caller's session, else the one in use, else the embedded default (as the CLI).
    spark = spark or SparkSession.getActiveSession() or get_spark()
    if isinstance(values, pd.DataFrame):
        return spark.createDataFrame(values)
    ids = list(values)
    if not ids:
        return spark.createDataFrame([], f"`{column}` {spark_type}")
    return spark.createDataFrame(pd.DataFrame({column: ids}))


def _candidate_frame(candidates, users: DataFrame, user_col: str, item_col: str) -> DataFrame:
    """Candidates as ``user, __candidates`` (array of item ids), one row per user that has any."""
    spark = users.sparkSession
    if isinstance(candidates, DataFrame):
        frame = candidates
    else:
        # Driver-side, as in LensKit: one lookup per user, for small user sets.
        lookup = candidates.get if isinstance(candidates, dict) else candidates
        rows = []
        for (user,) in users.select(user_col).distinct().toLocalIterator():
            items = lookup(user)
            if items is not None:
                rows.extend((user, item) for item in items)
        frame = spark.createDataFrame(pd.DataFrame(rows, columns=[user_col, item_col]))
    require_columns(frame, [user_col, item_col], "candidates")
    return frame.groupBy(user_col).agg(F.collect_set(item_col).alias(_CANDIDATES))


def recommend(
    algo: ModelRef,
    users,
    n: int | None = 10,
    candidates=None,
    *,
    user_col: str = "user",
    item_col: str = "item",
    spark: SparkSession | None = None,
    batch_size: int = 512,
    num_threads: int | None = None,
    output: str | None = None,
    model_dir: str | None = None,
) -> DataFrame:
    """Top-``n`` recommendations for each user: a DataFrame ``user, rank, item, score`` (rank from 1).

    ``users``: a Spark DataFrame with ``user_col`` (duplicates are recommended once), or a list/array of
    ids (then ``spark=``, the active session or :func:`~spark_recs.runtime.get_spark` builds the frame).
    ``n=None``: every candidate.
    ``candidates``: ``None`` = the model's default (items the user did not interact with in training;
    all items for an unknown user); a Spark DataFrame of ``(user, item)``; or a dict / function from
    user id to item ids, evaluated on the driver (for small user sets). Users unknown to the model get
    its documented fallback (e.g. ``Popular``'s list) or no rows; their number is logged.
    ``batch_size`` users are scored per matrix product (the Arrow batch size is Spark's
    ``spark.sql.execution.arrow.maxRecordsPerBatch``); ``num_threads`` per worker defaults to
    ``spark.task.cpus``. ``model_dir``: where a Connect session's workers read an in-memory model from
    (default: the local work dir; on a remote cluster a Volume path).
    """
    _check_n(n)
    model = load_model(algo)
    if not isinstance(model, Recommender):
        raise TypeError(f"{type(model).__name__} is a session model: use recommend_sessions")
    frame = _as_frame(users, user_col, spark, model.user_vocab.spark_type)
    require_columns(frame, [user_col], "users")
    frame = frame.select(user_col).distinct()
    counts = _report_unknown(frame, {user_col: ("users", model.user_vocab)}, "recommend")
    if counts["null"]:
        raise ValueError(
            f"users: {counts['null']:,} null {user_col} value(s); drop them first "
            "(spark_recs.data.schema.validate keeps them in its rejected rows with a reason)"
        )
    if candidates is not None:
        frame = frame.join(_candidate_frame(candidates, frame, user_col, item_col), user_col, "left")
    spark = frame.sparkSession
    load, threads = ship(algo, model, spark, model_dir), task_threads(spark, num_threads)
    user_type = dict(frame.dtypes)[user_col]
    schema = f"`{user_col}` {user_type}, rank int, `{item_col}` {model.item_vocab.spark_type}, score float"
    with_candidates = candidates is not None

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        torch.set_num_threads(threads)
        worker_model = load()
        for batch in batches:
            if batch.empty:
                continue
            ids = batch[user_col].to_numpy()
            chosen = None
            if with_candidates:
                chosen = [() if c is None else c for c in batch[_CANDIDATES].tolist()]
            with torch.no_grad():
                recs = recommend_frame(worker_model, ids, n, chosen, batch_size)
            yield recs.rename(columns={"user": user_col, "item": item_col})

    return _finish(frame.mapInPandas(run, schema), output)


def predict(
    algo: ModelRef,
    pairs,
    *,
    user_col: str = "user",
    item_col: str = "item",
    spark: SparkSession | None = None,
    batch_size: int = 65_536,
    num_threads: int | None = None,
    output: str | None = None,
    model_dir: str | None = None,
) -> DataFrame:
    """``pairs`` (Spark or pandas DataFrame with ``user``, ``item``; every other column, e.g. ``rating``,
    is kept) plus a ``prediction`` column (double; null where the model has no prediction).

    Unknown users and items get the model's documented fallback (e.g. ``Bias``: the biases it has) or
    a null prediction; how many pairs involve each is logged.
    """
    model = load_model(algo)
    if not isinstance(model, Recommender):
        raise TypeError(f"{type(model).__name__} is a session model: it has no rating predictions")
    frame = _as_frame(pairs, user_col, spark, model.user_vocab.spark_type)
    require_columns(frame, [user_col, item_col], "pairs")
    spark = frame.sparkSession
    load, threads = ship(algo, model, spark, model_dir), task_threads(spark, num_threads)
    schema = StructType([*frame.schema.fields, StructField("prediction", DoubleType())])

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        torch.set_num_threads(threads)
        worker_model = load()
        for batch in batches:
            for start in range(0, len(batch), batch_size):
                part = batch.iloc[start : start + batch_size].copy()
                users = worker_model.user_vocab.indices(part[user_col].to_numpy())
                items = worker_model.item_vocab.indices(part[item_col].to_numpy())
                with torch.no_grad():
                    part["prediction"] = worker_model.predict_pairs(users, items)
                yield part

    counts = _report_unknown(
        frame, {user_col: ("users", model.user_vocab), item_col: ("items", model.item_vocab)}, "predict"
    )
    if counts["null"]:
        raise ValueError(
            f"pairs: {counts['null']:,} row(s) with a null {user_col} or {item_col}; drop them first "
            "(spark_recs.data.schema.validate keeps them in its rejected rows with a reason)"
        )
    return _finish(frame.mapInPandas(run, schema), output)


def _matched_ids(frame: DataFrame, column: str, vocabulary: Vocabulary) -> Column:
    """``frame[column]`` in the vocabulary's id type, matched as :meth:`Vocabulary.indices` matches ids:
    integer-looking strings for integer ids, the decimal form of integers for string ids."""
    given, wanted = dict(frame.dtypes)[column], vocabulary.spark_type
    if wanted == "long" and given == "string":
        return F.trim(F.col(column)).try_cast("long")
    if wanted == "string" and given != "string":
        return F.col(column).cast("string")
    return F.col(column)


def _known_flags(frame: DataFrame, vocabularies: dict) -> tuple[DataFrame, dict[str, Column]]:
    """``frame`` left-joined with each broadcast vocabulary of ``{column: (what, vocabulary)}``, and per
    ``what`` a boolean column: is the row's id known to the model."""
    spark, checked, known = frame.sparkSession, frame, {}
    for column, (what, vocabulary) in vocabularies.items():
        ids = spark.createDataFrame(pd.DataFrame({f"_id_{what}": vocabulary.ids}))
        checked = checked.join(
            F.broadcast(ids.withColumn(f"_known_{what}", F.lit(True))),
            _matched_ids(frame, column, vocabulary) == F.col(f"_id_{what}"),
            "left",
        )
        known[what] = F.col(f"_known_{what}").isNotNull()
    return checked, known


def _report_unknown(frame: DataFrame, vocabularies: dict, task: str) -> dict[str, int]:
    """Count and log the rows of ``frame`` with an id the model does not know, per ``column: (what,
    vocabulary)``, and the rows with a null id (``"null"``), in one Spark job; return the counts."""
    checked, known = _known_flags(frame.select(*vocabularies), vocabularies)
    nulls = F.count(F.when(reduce(lambda a, b: a | b, [F.col(c).isNull() for c in vocabularies]), 1))
    counts = (
        checked.agg(
            nulls.alias("null"), *[F.count(F.when(~flag, 1)).alias(what) for what, flag in known.items()]
        )
        .first()
        .asDict()
    )
    types = dict(frame.dtypes)
    for column, (what, vocabulary) in vocabularies.items():
        if counts[what]:
            mismatch = types[column] != vocabulary.spark_type
            log.warning(
                "%s: %d rows have %s unknown to the model (fallback or no result)%s",
                task,
                counts[what],
                what,
                f"; {column} is {types[column]}, the model's ids are {vocabulary.spark_type}"
                if mismatch
                else "",
            )
        else:
            log.info("%s: every %s id is known to the model", task, what[:-1])
    return counts


# ---- sessions ---------------------------------------------------------------------------------------


def recommend_sessions(
    algo: ModelRef,
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
    output: str | None = None,
    model_dir: str | None = None,
) -> DataFrame:
    """Next-item recommendations for each session of ``events``.

    Returns ``session_key, position, rank, item, score``: after the session's last event (``position``
    = number of events used) or, with ``every_prefix``, after each event (``position`` = events seen so
    far). Each session reaches one worker whole, its events ordered by time, then item. Items
    are raw ids for models with an item vocabulary (GRU4Rec, Popular), else dense indices; events on
    items the model does not know are skipped. ``batch_size`` bounds the rows scored at once.
    """
    _check_n(n)
    require_columns(events, [session_key, item_key, time_key], "events")
    model = load_model(algo)
    _report_skipped_sessions(events, session_key, item_key, model)
    spark = events.sparkSession
    load, threads = ship(algo, model, spark, model_dir), task_threads(spark, num_threads)
    parts = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    # One row per session with its items in (time, item) order: the order is in the data, not in how rows
    # reach the workers (pysail drops a sortWithinPartitions before mapInPandas).
    events_in_order = F.sort_array(F.collect_list(F.struct(time_key, item_key)))
    sessions = (
        events.groupBy(session_key)
        .agg(events_in_order.alias(_ITEMS))
        .select(session_key, F.transform(_ITEMS, lambda e: e[item_key]).alias(_ITEMS))
        .repartition(parts, session_key)
    )
    vocabulary = getattr(model, "item_vocab", None)
    item_type = vocabulary.spark_type if vocabulary is not None else "long"
    session_type = dict(events.dtypes)[session_key]
    schema = f"`{session_key}` {session_type}, position int, rank int, item {item_type}, score float"

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        torch.set_num_threads(threads)
        worker_model = load()
        for frame in frames:
            if not frame.empty:
                flat = _session_events(frame, session_key, item_key)
                yield from _score_sessions(
                    worker_model, flat, session_key, item_key, n, every_prefix, batch_size
                )

    return _finish(sessions.mapInPandas(run, schema), output)


def _session_events(frame: pd.DataFrame, session_key: str, item_key: str) -> pd.DataFrame:
    """One row per event (``session_key, item_key``) from one row per session with its ordered items."""
    lengths = frame[_ITEMS].map(len).to_numpy()
    items = np.concatenate(frame[_ITEMS].tolist())
    return pd.DataFrame({session_key: np.repeat(frame[session_key].to_numpy(), lengths), item_key: items})


def _report_skipped_sessions(events: DataFrame, session_key: str, item_key: str, model) -> None:
    """Count (one Spark job) and log the sessions skipped because no event is on an item the model knows;
    raise when that is every session of a non-empty input."""
    vocabulary = getattr(model, "item_vocab", None)
    if vocabulary is not None:
        checked, known = _known_flags(events.select(session_key, item_key), {item_key: ("items", vocabulary)})
        known = known["items"]
    else:  # a model on dense indices knows 0..n_items-1
        checked, index = events, F.col(item_key)
        known = index.isNotNull() & (index >= 0) & (index < F.lit(model.n_items))
    per_session = checked.groupBy(session_key).agg(
        F.count(F.when(known, 1)).alias("known"), F.count(F.when(~known, 1)).alias("unknown")
    )
    row = per_session.agg(
        F.count("*").alias("sessions"),
        F.count(F.when(F.col("known") == 0, 1)).alias("skipped"),
        F.coalesce(F.sum("unknown"), F.lit(0)).alias("unknown"),
    ).first()
    if row["sessions"] and row["skipped"] == row["sessions"]:
        given = dict(events.dtypes)[item_key]
        types = (
            ""
            if vocabulary is None
            else f" ({item_key} is {given}, the model's item ids are {vocabulary.spark_type})"
        )
        raise ValueError(
            f"events: none of the {row['sessions']:,} sessions has an event on an item the model knows{types}; "
            "check that the events and the model come from the same catalogue"
        )
    if row["skipped"] or row["unknown"]:
        log.warning(
            "recommend_sessions: %d of %d sessions skipped (no item known to the model); %d events on unknown "
            "items ignored",
            row["skipped"],
            row["sessions"],
            row["unknown"],
        )


def _score_sessions(
    model, frame, session_key, item_key, n, every_prefix, batch_size
) -> Iterator[pd.DataFrame]:
    """Top-``n`` rows per session of ``frame`` (its events in order), events on unknown items skipped."""
    vocabulary = getattr(model, "item_vocab", None)
    indices = item_indices(model, frame[item_key].to_numpy())
    frame = frame.assign(**{item_key: indices})[indices >= 0]
    if frame.empty:
        return
    sessions = frame[session_key].to_numpy()
    items = frame[item_key].to_numpy(dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]])
    bounds = np.r_[starts, len(items)]
    lengths = np.diff(bounds)
    rows = np.cumsum(lengths if every_prefix else np.ones_like(lengths))
    first = 0
    while first < len(starts):
        # Whole sessions, at most batch_size scored rows (at least one session).
        done = rows[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(rows, done + batch_size, side="right")))
        chunk, first = np.arange(first, last), last
        seqs = [items[bounds[i] : bounds[i + 1]] for i in chunk]
        with torch.no_grad():
            scores = model.score_sessions(seqs, every_prefix=every_prefix)
        recs, values = top_k(scores, model.n_items if n is None else n)
        if every_prefix:
            ids = np.repeat(sessions[starts[chunk]], lengths[chunk])
            positions = np.concatenate([np.arange(1, length + 1) for length in lengths[chunk]])
        else:
            ids, positions = sessions[starts[chunk]], lengths[chunk]
        width = recs.shape[1]
        recs = recs.reshape(-1).numpy()
        yield pd.DataFrame(
            {
                session_key: np.repeat(ids, width),
                "position": np.repeat(positions, width).astype(np.int32),
                "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), len(ids)),
                "item": vocabulary.ids[recs] if vocabulary is not None else recs,
                "score": values.reshape(-1).numpy().astype(np.float32),
            }
        )
