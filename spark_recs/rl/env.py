"""recnn-style environments: users' time-ordered rating histories turned into (state, action, reward,
next state, done) batches for off-policy actor-critic training.

Histories are built once: in Spark for a Spark DataFrame (group by user, events ordered by sorting
``struct(time, item, rating)``, so ties in time go to the lower item id), or in pandas with the same order,
then held as flat arrays with per-user offsets. Ratings are rescaled ``rating_scale * (r - rating_center)``
(recnn's ``2 * (r - 2.5)``) before anything else, so rewards *and* the ratings inside states are rescaled,
as in recnn (its ``prepare_dataset`` rescales the rating column that its batches read both from).

Deliberate differences from recnn 0.1: ``frame_size``, ``min_seq_size`` and ``test_size`` are honoured; the
user split and the batch order are seeded; no users are silently dropped from training (recnn dropped the
two with the longest histories); items without an embedding are an error or dropped with a count; SeqEnv
uses every transition of every user (recnn kept a random ~5% and cut histories to the batch's shortest).

Every batch is a dict of tensors: ``state (B, S)``, ``action (B, d)`` (the next item's embedding),
``reward (B,)``, ``next_state (B, S)``, ``done (B,)`` (1.0 on a user's last transition), ``item (B,)``
(row of the action item in the embedding table), ``user (B,)`` (dense index in ``env.user_vocab``), and
for FrameEnv ``frame_items (B, frame_size)``. A batch holds every transition of ``batch_size`` users, in
time order per user, so ``B`` varies (recnn's layout).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import torch
from pyspark.sql import functions as F
from torch.utils.data import DataLoader

from spark_recs.data.schema import RatingColumns, require_columns
from spark_recs.data.sources import read_ratings
from spark_recs.models.vocabulary import Vocabulary
from spark_recs.runtime import get_spark

from .embeddings import ItemEmbeddings

log = logging.getLogger(__name__)

MISSING_ITEMS = ("error", "drop")


@dataclass
class Histories:
    """Per-user, time-ordered ratings as flat arrays: ``users[k]``'s are ``offsets[k]:offsets[k+1]``."""

    users: np.ndarray  # raw user ids, ascending
    offsets: np.ndarray  # int64, len(users) + 1
    items: np.ndarray  # raw item ids
    ratings: np.ndarray  # float64, as given

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def rating_columns(columns: RatingColumns | dict | None) -> RatingColumns:
    """A :class:`RatingColumns` from itself, a dict of overrides (e.g. ``{"user": "userId"}``) or None."""
    cols = columns if isinstance(columns, RatingColumns) else RatingColumns(**(columns or {}))
    if cols.rating is None or cols.timestamp is None:
        raise ValueError(
            "the environments need a rating and a timestamp column; got None in the column mapping"
        )
    return cols


def user_histories(ratings, columns: RatingColumns | dict | None = None) -> Histories:
    """Each user's ratings ordered by time, then item, then rating, from a pandas or Spark DataFrame.

    Users come out in ascending id order. Missing or non-numeric values are an error naming the column.
    """
    cols = rating_columns(columns)
    require_columns(ratings, [cols.user, cols.item, cols.rating, cols.timestamp], "ratings")
    spark_frame = hasattr(ratings, "sparkSession")
    time_type = dict(ratings.dtypes)[cols.timestamp] if spark_frame else ratings[cols.timestamp].dtype
    if str(time_type) in ("string", "object", "str"):
        # Times compared as text would order "10" before "9".
        raise ValueError(
            f"ratings column {cols.timestamp!r} holds text ({time_type}), not numbers or timestamps: "
            "parse it first (spark_recs.data.schema.validate does, rejecting unparseable rows)"
        )
    if spark_frame:
        histories, nulls = _spark_histories(ratings, cols)
    else:
        histories, nulls = _pandas_histories(ratings, cols)
    bad = {c: n for c, n in nulls.items() if n}
    if bad:
        raise ValueError(
            "ratings have missing (or non-numeric rating) values: "
            + ", ".join(f"{n} in {c!r}" for c, n in bad.items())
            + "; validate them first (spark_recs.data.schema.validate keeps bad rows in its rejected output)"
        )
    if len(histories.items) == 0:
        raise ValueError("the ratings are empty: no histories to build")
    return histories


def _spark_histories(df, cols: RatingColumns) -> tuple[Histories, dict]:
    rating = F.col(cols.rating).cast("double")
    event = F.struct(
        F.col(cols.timestamp).alias("time"), F.col(cols.item).alias("item"), rating.alias("rating")
    )
    checks = {cols.item: F.col(cols.item), cols.rating: rating, cols.timestamp: F.col(cols.timestamp)}
    grouped = df.groupBy(F.col(cols.user).alias("user")).agg(
        # collect_list has no defined order; sorting the structs orders by time, then item, then rating.
        F.sort_array(F.collect_list(event)).alias("events"),
        *[F.count_if(c.isNull()).alias(f"null_{i}") for i, c in enumerate(checks.values())],
    )
    table = (
        grouped.select(
            "user",
            F.transform("events", lambda e: e["item"]).alias("items"),
            F.transform("events", lambda e: e["rating"]).alias("ratings"),
            *[f"null_{i}" for i in range(len(checks))],
        )
        .orderBy("user")
        .toArrow()
    )
    lengths = pc.list_value_length(table.column("items")).to_numpy()
    nulls = {cols.user: table.column("user").null_count}
    nulls |= {c: int(pc.sum(table.column(f"null_{i}")).as_py() or 0) for i, c in enumerate(checks)}
    histories = Histories(
        users=table.column("user").to_numpy(),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        items=pc.list_flatten(table.column("items")).to_numpy(),
        ratings=pc.list_flatten(table.column("ratings")).to_numpy(),
    )
    return histories, nulls


def _pandas_histories(df: pd.DataFrame, cols: RatingColumns) -> tuple[Histories, dict]:
    frame = pd.DataFrame(
        {
            "user": df[cols.user].to_numpy(),
            "time": df[cols.timestamp].to_numpy(),
            "item": df[cols.item].to_numpy(),
            "rating": pd.to_numeric(df[cols.rating], errors="coerce").to_numpy(np.float64),
        }
    )
    names = {cols.user: "user", cols.item: "item", cols.rating: "rating", cols.timestamp: "time"}
    nulls = {column: int(frame[name].isna().sum()) for column, name in names.items()}
    if any(nulls.values()):
        return Histories(np.zeros(0), np.zeros(1, np.int64), np.zeros(0), np.zeros(0)), nulls
    frame = frame.sort_values(["user", "time", "item", "rating"], kind="stable")
    users, starts = np.unique(frame["user"].to_numpy(), return_index=True)
    histories = Histories(
        users=users,
        offsets=np.r_[starts, len(frame)].astype(np.int64),
        items=frame["item"].to_numpy(),
        ratings=frame["rating"].to_numpy(),
    )
    return histories, nulls


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _Env:
    """Shared set-up: embeddings, indexed and filtered histories, the seeded user split, data loaders.

    A subclass sets ``_collate`` (made from the set-up environment, it builds a batch from dense user
    indices) and ``_shortest``: users need at least ``max(min_seq_size, _shortest)`` ratings.
    """

    _collate: ClassVar[type]
    _shortest: int

    def __init__(
        self,
        embeddings,
        ratings,
        batch_size: int,
        num_workers: int,
        test_size: float,
        min_seq_size: int,
        *,
        columns: RatingColumns | dict | None = None,
        rating_center: float = 2.5,
        rating_scale: float = 2.0,
        missing_items: str = "error",
        seed: int = 42,
        spark=None,
    ) -> None:
        min_length = max(_positive_int(min_seq_size, "min_seq_size"), self._shortest)
        self.batch_size = _positive_int(batch_size, "batch_size")
        if not 0 <= test_size < 1:
            raise ValueError(f"test_size must be in [0, 1), got {test_size!r}")
        if missing_items not in MISSING_ITEMS:
            raise ValueError(f"missing_items must be one of {MISSING_ITEMS}, got {missing_items!r}")
        if isinstance(embeddings, (str, os.PathLike)):
            embeddings = ItemEmbeddings.from_file(embeddings)
        elif not isinstance(embeddings, ItemEmbeddings):
            embeddings = ItemEmbeddings.from_frame(embeddings)
        self.embeddings = embeddings
        cols = rating_columns(columns)
        if isinstance(ratings, (str, os.PathLike)):
            ratings = read_ratings(spark or get_spark(), str(ratings), "ratings", columns=cols).accepted
            cols = RatingColumns()
        histories = user_histories(ratings, cols)
        items = self._index_items(histories, missing_items)
        lengths = np.bincount(
            np.repeat(np.arange(len(histories.users)), histories.lengths)[items >= 0],
            minlength=len(histories.users),
        )
        keep_user = lengths >= min_length
        keep_event = np.repeat(keep_user, histories.lengths) & (items >= 0)
        self.excluded_users = int((~keep_user).sum())
        if self.excluded_users:
            log.info("%d users with fewer than %d ratings excluded", self.excluded_users, min_length)
        if not keep_user.any():
            raise ValueError(
                f"no user has at least {min_length} ratings with an embedding: lower min_seq_size "
                "(or frame_size), or give more data"
            )
        #: Raw ids of the kept users; a user's dense index is its position here.
        self.user_vocab = Vocabulary(histories.users[keep_user])
        self.offsets = torch.from_numpy(np.r_[0, np.cumsum(lengths[keep_user])].astype(np.int64))
        #: Row in the embedding table of every kept event, users' histories one after another.
        self.items = torch.from_numpy(items[keep_event].astype(np.int64))
        #: Rescaled rating of every kept event.
        self.ratings = torch.from_numpy(
            (rating_scale * (histories.ratings[keep_event] - rating_center)).astype(np.float32)
        )

        split_seed, train_seed, test_seed = np.random.SeedSequence(seed).spawn(3)
        n_users = len(self.user_vocab)
        order = np.random.default_rng(split_seed).permutation(n_users)
        n_test = math.ceil(test_size * n_users)
        if n_test >= n_users:
            raise ValueError(f"test_size={test_size} leaves no training user among {n_users} users")
        #: Dense indices of the test and training users (disjoint, ascending).
        self.test_users, self.train_users = np.sort(order[:n_test]), np.sort(order[n_test:])
        collate = self._collate(self)
        self.train_dataloader = self._loader(self.train_users, collate, train_seed, num_workers)
        self.test_dataloader = self._loader(self.test_users, collate, test_seed, num_workers)

    def _index_items(self, histories: Histories, missing_items: str) -> np.ndarray:
        """Embedding rows of the events' items (-1 where dropped); missing items raise or are counted."""
        items = self.embeddings.indices(histories.items)
        missing = items < 0
        self.dropped_ratings = int(missing.sum())
        self.dropped_items = len(pd.unique(histories.items[missing]))
        if not self.dropped_ratings:
            return items
        examples = pd.unique(histories.items[missing])[:10].tolist()
        if missing_items == "error":
            hint = " (do the embedding and rating item ids have the same type?)" if missing.all() else ""
            raise ValueError(
                f"{self.dropped_items} items ({self.dropped_ratings} ratings) have no embedding, e.g. item "
                f"ids {examples}{hint}: add their vectors or pass missing_items='drop'"
            )
        log.info(
            "%d ratings of %d items without an embedding dropped (e.g. %s)",
            self.dropped_ratings,
            self.dropped_items,
            examples,
        )
        return items

    def _loader(
        self, users: np.ndarray, collate, seed: np.random.SeedSequence, num_workers: int
    ) -> DataLoader:
        generator = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
        return DataLoader(
            users,
            batch_size=self.batch_size,
            shuffle=len(users) > 0,  # torch refuses to shuffle an empty split (test_size=0)
            generator=generator,
            collate_fn=collate,
            num_workers=num_workers,
        )

    @property
    def action_dim(self) -> int:
        return self.embeddings.dim

    def train_batch(self) -> dict:
        """One batch of training users (the next shuffle of the seeded training loader)."""
        return next(iter(self.train_dataloader))

    def test_batch(self) -> dict:
        """One batch of test users (the next shuffle of the seeded test loader)."""
        if len(self.test_users) == 0:
            raise ValueError("there are no test users: build the environment with test_size > 0")
        return next(iter(self.test_dataloader))


def _event_positions(offsets: torch.Tensor, users: torch.Tensor, skip: torch.Tensor):
    """For each user, its events' flat positions after the first ``skip``: (positions, per-user counts)."""
    starts = offsets[users] + skip
    counts = offsets[users + 1] - starts
    within = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    return torch.repeat_interleave(starts, counts) + within, counts


def frame_state(vectors: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
    """recnn's frame state: the frame's item embeddings flattened, then the frame's ratings.

    ``items``/``ratings``: ``(B, frame_size)``; returns ``(B, frame_size * dim + frame_size)``.
    """
    return torch.cat([vectors[items].flatten(1), ratings], dim=1)


class _FrameCollate:
    """Builds FrameEnv batches from dense user indices (a plain object, so loader workers can pickle it)."""

    def __init__(self, env: FrameEnv) -> None:
        self.offsets, self.items, self.ratings = env.offsets, env.items, env.ratings
        self.vectors, self.frame_size = env.embeddings.vectors, env.frame_size

    def __call__(self, users) -> dict:
        size = self.frame_size
        users = torch.as_tensor(np.asarray(users, dtype=np.int64))
        # Window k of a user covers its events k .. k + frame_size: one per event after the first frame.
        last, counts = _event_positions(self.offsets, users, torch.full_like(users, size))
        window = (last - size).unsqueeze(1) + torch.arange(size + 1)
        items, ratings = self.items[window], self.ratings[window]
        done = torch.zeros(len(last))
        done[torch.cumsum(counts, 0) - 1] = 1.0
        return {
            "state": frame_state(self.vectors, items[:, :size], ratings[:, :size]),
            "action": self.vectors[items[:, size]],
            "reward": ratings[:, size],
            "next_state": frame_state(self.vectors, items[:, 1:], ratings[:, 1:]),
            "done": done,
            "item": items[:, size],
            "user": torch.repeat_interleave(users, counts),
            "frame_items": items[:, :size],
        }


class FrameEnv(_Env):
    """Static-length environment (recnn's ``FrameEnv``): the state is the last ``frame_size`` ratings.

    A window of ``frame_size + 1`` events slides over each user's history; for the window starting at
    event ``k``: ``state`` = embeddings of events ``k .. k+F-1`` flattened, then their rescaled ratings
    (``F * d + F`` values: 1290 for ``F = 10``, ``d = 128``); ``action`` = the embedding of event ``k+F``;
    ``reward`` = its rescaled rating; ``next_state`` = the state of events ``k+1 .. k+F``; ``done`` = 1 on
    the user's last window. A user with ``L`` ratings gives ``L - F`` windows.

    ``embeddings``: an :class:`ItemEmbeddings`, a path (``.parquet``/``.npz``) or a pandas/Spark frame
    ``item, embedding``. ``ratings``: a pandas or Spark DataFrame, or a source (a path, table name or
    MovieLens folder, read and validated by :func:`~spark_recs.data.sources.read_ratings` with ``spark``,
    default :func:`~spark_recs.runtime.get_spark`), columns ``user, item, rating, timestamp`` or as
    mapped by ``columns`` (a :class:`~spark_recs.data.schema.RatingColumns` or a dict such as
    ``{"user": "userId", "item": "movieId"}``). Users with fewer than ``max(min_seq_size, frame_size + 1)``
    ratings (after dropping items without embeddings, with ``missing_items="drop"``) are excluded and
    counted in ``excluded_users``. A ``test_size`` share of the users (rounded up) is held out for testing,
    drawn from ``seed``; the loaders shuffle users with generators drawn from ``seed`` too. ``num_workers``:
    loader processes building batches. Keyword-only ``options`` (as :class:`SeqEnv`'s): ``columns``,
    ``rating_center`` (2.5), ``rating_scale`` (2.0), ``missing_items`` (``"error"`` or ``"drop"``),
    ``seed`` (42), ``spark``.
    """

    _collate = _FrameCollate

    def __init__(
        self,
        embeddings,
        ratings,
        frame_size: int = 10,
        batch_size: int = 25,
        num_workers: int = 0,
        test_size: float = 0.05,
        min_seq_size: int = 10,
        **options,
    ) -> None:
        self.frame_size = _positive_int(frame_size, "frame_size")
        self._shortest = self.frame_size + 1
        super().__init__(embeddings, ratings, batch_size, num_workers, test_size, min_seq_size, **options)

    @property
    def state_dim(self) -> int:
        return self.frame_size * (self.embeddings.dim + 1)

    def last_frames(self, users=None) -> dict:
        """Each user's last frame, the state after its whole history (to recommend its next item).

        ``users``: raw user ids (default: every kept user, in dense order); ids not kept are an error.
        Returns ``user (n,)`` dense indices, ``state (n, state_dim)`` and ``frame_items (n, frame_size)``.
        """
        if users is None:
            index = np.arange(len(self.user_vocab))
        else:
            index = self.user_vocab.indices(users)
            unknown = np.asarray(users, dtype=object)[index < 0]
            if len(unknown):
                raise ValueError(
                    f"{len(unknown)} users are not in this environment (unknown or excluded as too short), "
                    f"e.g. {unknown[:10].tolist()}"
                )
        index = torch.from_numpy(index.astype(np.int64))
        frame = (self.offsets[index + 1] - self.frame_size).unsqueeze(1) + torch.arange(self.frame_size)
        items = self.items[frame]
        return {
            "user": index,
            "state": frame_state(self.embeddings.vectors, items, self.ratings[frame]),
            "frame_items": items,
        }


class _SeqCollate:
    """Builds SeqEnv batches: runs the state encoder over the batch's padded histories."""

    def __init__(self, env: SeqEnv) -> None:
        self.offsets, self.items, self.ratings = env.offsets, env.items, env.ratings
        self.vectors, self.encoder = env.embeddings.vectors, env.state_encoder

    def __call__(self, users) -> dict:
        users = torch.as_tensor(np.asarray(users, dtype=np.int64))
        events, lengths = _event_positions(self.offsets, users, torch.zeros_like(users))
        row = torch.repeat_interleave(torch.arange(len(users)), lengths)
        step = events - self.offsets[users][row]
        inputs = torch.zeros(len(users), int(lengths.max()), self.vectors.shape[1] + 1)
        inputs[row, step] = torch.cat(
            [self.vectors[self.items[events]], self.ratings[events].unsqueeze(1)], 1
        )
        outputs = self.encoder(inputs, lengths)
        if outputs.dim() != 3 or outputs.shape[:2] != inputs.shape[:2]:
            raise ValueError(
                "the state encoder must return (users, steps, state) = "
                f"({inputs.shape[0]}, {inputs.shape[1]}, S) outputs for (users, steps, dim + 1) inputs, "
                f"got shape {tuple(outputs.shape)}"
            )
        # Transition t (t = 1 .. L-1): state after events 0..t-1, action = event t, next state after 0..t.
        target = step > 0
        row, step, events = row[target], step[target], events[target]
        return {
            "state": outputs[row, step - 1],
            "action": self.vectors[self.items[events]],
            "reward": self.ratings[events],
            "next_state": outputs[row, step],
            "done": (step == lengths[row] - 1).float(),
            "item": self.items[events],
            "user": users[row],
        }


class SeqEnv(_Env):
    """Variable-length environment (recnn's ``SeqEnv``): the state is an encoding of the whole history so far.

    Each event ``k`` of a user is the vector ``embedding(item_k) ++ [rescaled rating_k]`` (``d + 1``
    values). ``state_encoder(inputs, lengths)`` gets a batch of users' histories zero-padded at the end,
    ``inputs (n_users, T, d + 1)`` with ``lengths (n_users,)``, and must return ``(n_users, T, S)``: the
    state after each event. It must be causal (output ``k`` depends on events ``0..k`` only), e.g. a
    ``torch.nn.GRU(d + 1, S, batch_first=True)`` returning its output sequence. For a user with ``L``
    ratings the transitions are ``t = 1 .. L-1``: ``state`` = output ``t-1`` (the encoding of events
    ``0..t-1``), ``action`` = the embedding of event ``t``, ``reward`` = its rescaled rating,
    ``next_state`` = output ``t`` (events ``0..t``), ``done`` = 1 for ``t = L-1``.

    The encoder runs in the main process with gradients on (so it can be trained with the networks that
    consume the states; wrap the loop in ``torch.no_grad()`` for a fixed encoder). Other parameters as
    :class:`FrameEnv`; users need at least ``max(min_seq_size, 2)`` ratings.
    """

    _collate = _SeqCollate
    _shortest = 2

    def __init__(
        self,
        embeddings,
        ratings,
        state_encoder,
        batch_size: int = 25,
        test_size: float = 0.05,
        min_seq_size: int = 10,
        **options,
    ) -> None:
        if not callable(state_encoder):
            raise TypeError(f"state_encoder must be callable (e.g. an nn.Module), got {type(state_encoder)}")
        self.state_encoder = state_encoder
        super().__init__(embeddings, ratings, batch_size, 0, test_size, min_seq_size, **options)
