"""Train/test splits in Spark: GRU4Rec's session time split and by-fraction split, LensKit crossfolds,
a per-user temporal holdout and recnn's user split.

Randomness comes from ``xxhash64(seed, key)``, never ``rand()``, so a split depends only on the data and
the seed, not on partitioning or engine. Rows a split removes are kept in a ``rejected`` DataFrame (the
input columns plus ``reason``) so ``rows in = parts + rejected`` can always be checked. Session splits
take their column names as ``**keys``: the fields of :class:`~spark_recs.data.schema.SessionColumns`
(``session_key``, ``item_key``, ``time_key``). Inputs are expected to be validated
(:func:`spark_recs.data.schema.validate`): no null ids.
"""

from __future__ import annotations

import logging
import math
from collections import namedtuple
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import reduce
from typing import ClassVar

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_recs.data.index import dense_positions, hash_bucket
from spark_recs.data.schema import SessionColumns, require_columns
from spark_recs.runtime import cached

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400
PART = "part"
REASON = "reason"
REJECTED = "rejected"
END = "_end"

TTPair = namedtuple("TTPair", ["train", "test"])
TTPair.__doc__ = "Train-test pair (named tuple), as in LensKit."


def _part(name: str) -> property:
    return property(lambda self: self.part(name), doc=f"The ``{name}`` rows, with the input columns only.")


@dataclass(frozen=True)
class Labelled:
    """Every input row exactly once, with ``part`` (where it went, or ``"rejected"``) and ``reason`` (why it
    was rejected, else null). The parts are filters of :attr:`rows`; ``cache()`` makes them cheap."""

    rows: DataFrame
    PARTS: ClassVar[tuple[str, ...]] = ()
    REASONS: ClassVar[tuple[str, ...]] = ()

    def cache(self):
        """The same result with :attr:`rows` cached, so its parts and counts are computed once."""
        return replace(self, rows=cached(self.rows))

    def part(self, name: str) -> DataFrame:
        """The rows of one part, with the input columns only."""
        return self.rows.where(F.col(PART) == name).drop(PART, REASON)

    @property
    def rejected(self) -> DataFrame:
        """Removed rows: the input columns plus ``reason``."""
        return self.rows.where(F.col(PART) == REJECTED).drop(PART)

    def counts(self) -> dict[str, int]:
        """Rows per part and removed rows per reason (``rejected:<reason>``), zeros included, in one job."""
        found = {
            (f"{REJECTED}:{r[REASON]}" if r[PART] == REJECTED else r[PART]): int(r["count"])
            for r in self.rows.groupBy(PART, REASON).count().collect()
        }
        return dict.fromkeys([*self.PARTS, *(f"{REJECTED}:{r}" for r in self.REASONS)], 0) | found


@dataclass(frozen=True)
class Filtered(Labelled):
    """Result of :func:`preprocess_sessions`: parts ``kept`` and ``rejected``."""

    PARTS: ClassVar = ("kept",)
    REASONS: ClassVar = ("null_key", "short_session", "rare_item", "short_session_after_item_filter")
    kept = _part("kept")


@dataclass(frozen=True)
class SessionSplit(Labelled):
    """Result of :func:`time_split`: parts ``train`` and ``test``; ``cutoff`` is the time from which a
    session's last event puts it in test (None for empty input)."""

    cutoff: float | None = None
    PARTS: ClassVar = ("train", "test")
    REASONS: ClassVar = ("null_key", "test_unseen_item", "test_short_session")
    train, test = _part("train"), _part("test")


@dataclass(frozen=True)
class GRU4RecSplit(Labelled):
    """Result of :func:`gru4rec_time_split`: parts ``train_tr``, ``valid``, ``test`` and ``rejected``;
    ``train_full`` = ``train_tr`` + ``valid`` + the rows rejected by the validation split (``valid_*``)."""

    test_cutoff: float | None = None
    valid_cutoff: float | None = None
    PARTS: ClassVar = ("train_tr", "valid", "test")
    REASONS: ClassVar = (
        Filtered.REASONS + SessionSplit.REASONS[1:] + ("valid_unseen_item", "valid_short_session")
    )
    train_tr, valid, test = _part("train_tr"), _part("valid"), _part("test")

    @property
    def train_full(self) -> DataFrame:
        in_valid_split = F.col(PART).isin("train_tr", "valid") | F.col(REASON).startswith("valid_")
        return self.rows.where(in_valid_split).drop(PART, REASON)

    def counts(self) -> dict[str, int]:
        counts = super().counts()
        valid_rejected = sum(n for key, n in counts.items() if key.startswith(f"{REJECTED}:valid_"))
        return counts | {"train_full": counts["train_tr"] + counts["valid"] + valid_rejected}


@dataclass(frozen=True)
class UserSplit(Labelled):
    """Result of :func:`user_split`: whole users in ``train`` or ``test``; short users rejected."""

    PARTS: ClassVar = ("train", "test")
    REASONS: ClassVar = ("too_few_ratings",)
    train, test = _part("train"), _part("test")


# --- GRU4Rec: preprocessing and time split -------------------------------------------------------


def _live() -> Column:
    return F.col(PART).isNull()


def _live_count(key: str, condition: Column | None = None) -> Column:
    return F.count(F.when(_live() if condition is None else condition, 1)).over(Window.partitionBy(key))


def _assign(df: DataFrame, condition: Column, part: str, reason: str | None = None) -> DataFrame:
    """Send the undecided rows meeting ``condition`` to ``part`` (with ``reason``); decided rows stay."""
    chosen = _live() & F.coalesce(condition, F.lit(False))
    return df.withColumns(
        {
            REASON: F.when(chosen, F.lit(reason)).otherwise(F.col(REASON)).cast("string"),
            PART: F.when(chosen, F.lit(part)).otherwise(F.col(PART)),
        }
    )


def _reject(df: DataFrame, condition: Column, reason: str) -> DataFrame:
    return _assign(df, condition, REJECTED, reason)


def _start(df: DataFrame, keys: list[str]) -> DataFrame:
    """Check the columns and add undecided ``part``/``reason``; rows with a null key are rejected at once."""
    require_columns(df, keys, "input")
    clash = [c for c in (PART, REASON) if c in df.columns]
    if clash:
        raise ValueError(f"input already has column(s) {clash}, which the split adds; rename them first")
    df = df.withColumns({PART: F.lit(None).cast("string"), REASON: F.lit(None).cast("string")})
    return _reject(df, reduce(lambda a, b: a | b, [F.col(k).isNull() for k in keys]), "null_key")


def _per_item(df: DataFrame, c: SessionColumns, condition: Column) -> DataFrame:
    """Add ``_n``: how many rows of each row's item meet ``condition``. The counts are one small row per
    item, computed once (:func:`~spark_recs.runtime.cached`, so its size is known even to engines that
    ignore the broadcast hint) and broadcast to the rows, which keep their partitioning by session: the
    session windows of the whole split then share one shuffle."""
    per_item = cached(df.where(condition).groupBy(c.item_key).agg(F.count(F.lit(1)).alias("_n")))
    joined = df.join(F.broadcast(per_item), c.item_key, "left")
    return joined.select(*df.columns, F.coalesce(F.col("_n"), F.lit(0)).alias("_n"))


def _session_end(c: SessionColumns) -> Column:
    """The time of the session's last undecided event (null when none is left)."""
    t = F.when(_live(), F.col(c.time_key).cast("double"))
    return F.max(t).over(Window.partitionBy(c.session_key))


def _preprocess(df: DataFrame, c: SessionColumns, min_session_length: int, min_item_support: int):
    """GRU4Rec's filters, adding ``_end`` (:func:`_session_end`) for the time split: it comes from the same
    window as the last session lengths, as the sessions that filter rejects have no rows left to split and
    the others keep all of theirs."""
    df = _reject(df, _live_count(c.session_key) < min_session_length, "short_session")
    df = _reject(_per_item(df, c, _live()), F.col("_n") < min_item_support, "rare_item").drop("_n")
    df = df.withColumns({"_n": _live_count(c.session_key), END: _session_end(c)})
    return _reject(df, F.col("_n") < min_session_length, "short_session_after_item_filter").drop("_n")


def _cutoffs(df: DataFrame, c: SessionColumns, days: list[float]) -> list[float | None]:
    """The cutoffs of GRU4Rec's successive time splits of the undecided rows: the first ``days[0]`` before
    their last event, each next one ``days[i]`` before the last end (``_end``) of the sessions the splits
    before it leave (those ending before their cutoffs). One small job per split; None when no row is
    left."""
    last = df.agg(F.max(F.when(_live(), F.col(c.time_key).cast("double")))).first()[0]
    found = [None if last is None else last - days[0] * SECONDS_PER_DAY]
    end = F.when(_live(), F.col(END))
    for span in days[1:]:
        last = None if found[-1] is None else df.agg(F.max(F.when(end < F.lit(found[-1]), end))).first()[0]
        found.append(None if last is None else last - span * SECONDS_PER_DAY)
    return found


def _split_last_days(df: DataFrame, c: SessionColumns, splits: list[tuple[str, float | None]]) -> DataFrame:
    """GRU4Rec's time splits of the undecided rows (with ``_end``), in turn, each at its ``(part, cutoff)``:
    the sessions left whose last event is at or after the cutoff go to ``part``, except events on items
    absent from the sessions left outside it (rejected ``<part>_unseen_item``), then sessions left shorter
    than 2 (``<part>_short_session``). A split only decides the rows of its own sessions, so which sessions
    each takes, and the item counts of all of them, follow from the undecided rows at the start: one
    aggregation per item for every split, broadcast to the rows, and one window by session for the
    lengths left in every split."""
    taken, counts = F.lit(False), []
    for i, (_, cutoff) in enumerate(splits):
        reached = F.coalesce(F.col(END) >= F.lit(cutoff), F.lit(False))
        df = df.withColumn(f"_in{i}", _live() & ~taken & reached)
        taken = taken | F.col(f"_in{i}")
        counts.append(F.count(F.when(_live() & ~taken, 1)).alias(f"_n{i}"))  # the rows outside it
    per_item = cached(df.groupBy(c.item_key).agg(*counts))
    df = df.join(F.broadcast(per_item), c.item_key, "left")
    for i, (part, _) in enumerate(splits):
        unseen = F.coalesce(F.col(f"_n{i}"), F.lit(0)) == 0
        df = _reject(df, F.col(f"_in{i}") & unseen, f"{part}_unseen_item")
    df = df.withColumn("_held", _live_count(c.session_key, _live() & taken))
    for i, (part, _) in enumerate(splits):
        df = _reject(df, F.col(f"_in{i}") & (F.col("_held") < 2), f"{part}_short_session")
        df = _assign(df, F.col(f"_in{i}"), part)
    return df.drop(END, "_held", *[f"_{x}{i}" for i in range(len(splits)) for x in ("in", "n")])


def preprocess_sessions(
    df: DataFrame, *, min_session_length: int = 2, min_item_support: int = 5, **keys: str
) -> Filtered:
    """GRU4Rec's filtering: drop short sessions, then items with fewer than ``min_item_support`` events,
    then sessions that became shorter than ``min_session_length``."""
    c = SessionColumns(**keys)
    rows = _preprocess(_start(df, c.names), c, min_session_length, min_item_support).drop(END)
    return Filtered(_assign(rows, F.lit(True), "kept"))


def time_split(df: DataFrame, days: float = 1, **keys: str) -> SessionSplit:
    """Test = sessions whose last event is in the final ``days`` days (``time_key`` in seconds); no session is
    cut. Test events on items not in train are rejected, then test sessions shorter than 2 events."""
    c = SessionColumns(**keys)
    rows = _start(df, c.names)
    (cutoff,) = _cutoffs(rows, c, [days])
    rows = rows.withColumn(END, _session_end(c))
    return SessionSplit(_assign(_split_last_days(rows, c, [("test", cutoff)]), F.lit(True), "train"), cutoff)


def gru4rec_time_split(
    df: DataFrame,
    days: float = 1,
    *,
    valid_days: float | None = None,
    preprocess: bool = True,
    min_session_length: int = 2,
    min_item_support: int = 5,
    **keys: str,
) -> GRU4RecSplit:
    """GRU4Rec's RSC15 preparation: :func:`preprocess_sessions` (skip with ``preprocess=False``), a
    :func:`time_split` of the last ``days`` into ``test``, then the same split of the rest (``train_full``)
    on its last ``valid_days`` (default ``days``) into ``train_tr`` and ``valid``. The preprocessed rows
    are computed once (:func:`~spark_recs.runtime.cached`) with their session ends; the cutoffs come from
    those and both splits from one aggregation per item and one window (:func:`_split_last_days`)."""
    c = SessionColumns(**keys)
    rows = _start(df, c.names)
    if preprocess:
        rows = _preprocess(rows, c, min_session_length, min_item_support)
    else:
        rows = rows.withColumn(END, _session_end(c))
    rows = cached(rows)
    test_cutoff, valid_cutoff = _cutoffs(rows, c, [days, days if valid_days is None else valid_days])
    rows = _split_last_days(rows, c, [("test", test_cutoff), ("valid", valid_cutoff)])
    return GRU4RecSplit(_assign(rows, F.lit(True), "train_tr"), test_cutoff, valid_cutoff)


def _sorted_positions(df: DataFrame, value: str, tiebreak: list[str], out: str, buckets: int = 256):
    """Add ``out``: the row's position ``0..n-1`` in ascending (``value``, *``tiebreak``) order; return (df, n).

    The buckets of :func:`~spark_recs.data.index.dense_positions` are ranges of ``value`` here, so
    positions follow the global order while each window still runs per bucket.
    """
    lo, hi = df.agg(F.min(value), F.max(value)).first()
    width = ((hi - lo) / buckets) if lo is not None and hi > lo else 1.0
    bucket = F.least(F.floor((F.col(value) - F.lit(lo or 0.0)) / F.lit(width)), F.lit(buckets - 1))
    order = [F.col(value), *[F.col(c) for c in tiebreak]]
    return dense_positions(df, order, out, bucket=F.coalesce(bucket.cast("long"), F.lit(0).cast("long")))


def train_valid_test_split(
    df: DataFrame, valid_fraction: float = 0.1, test_fraction: float = 0.1, **keys: str
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Split whole sessions by time (GRU4Rec README): sessions ordered by their last event (ties by id), the
    latest ``round(test_fraction * n)`` to test, the ``round(valid_fraction * n)`` before them to valid.

    ``item_key`` is only checked, so ``**config["data"]`` can be passed as is.
    """
    if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction <= 1):
        raise ValueError(f"need 0 <= fractions and valid + test <= 1, got {valid_fraction}, {test_fraction}")
    c = SessionColumns(**keys)
    require_columns(df, c.names, "session data")
    sessions = df.groupBy(c.session_key).agg(F.max(F.col(c.time_key).cast("double")).alias("_end"))
    sessions, n = _sorted_positions(sessions, "_end", [c.session_key], "_pos")
    n_test, n_valid = round(test_fraction * n), round(valid_fraction * n)
    part = (
        F.when(F.col("_pos") >= n - n_test, "test")
        .when(F.col("_pos") >= n - n_test - n_valid, "valid")
        .otherwise("train")
    )
    parted = df.join(sessions.select(c.session_key, part.alias("_part")), c.session_key).select(
        *df.columns, "_part"
    )
    return tuple(parted.where(F.col("_part") == p).drop("_part") for p in ("train", "valid", "test"))


# --- LensKit crossfolds --------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleN:
    """Hold out ``n`` random rows of each test user (all of them when it has ``n`` or fewer, as LensKit).

    ``seed=None`` takes the seed of the partitioning function.
    """

    n: int
    seed: int | None = None

    def held_out(self, size: Column) -> Column:
        """How many rows of a user with ``size`` rows to hold out."""
        return F.lit(self.n)


@dataclass(frozen=True)
class SampleFrac:
    """Hold out ``round(fraction * |R_u|)`` random rows of each test user (half to even, as Python's round)."""

    fraction: float
    seed: int | None = None

    def held_out(self, size: Column) -> Column:
        """How many rows of a user with ``size`` rows to hold out."""
        return F.bround(size * F.lit(float(self.fraction)), 0)


def _row_key(data: DataFrame, *salt: int) -> Column:
    return F.xxhash64(*[F.lit(s) for s in salt], *[F.col(c) for c in data.columns])


def _shuffled(df: DataFrame, key: str, *salt: int) -> DataFrame:
    """Add ``_pos``: a seeded pseudo-random permutation ``0..n-1`` of the (unique) values of ``key``."""
    h = F.xxhash64(*[F.lit(s) for s in salt], F.col(key))
    return dense_positions(df, order=[h, F.col(key)], out="_pos", bucket=hash_bucket(h))[0]


def _array_split_fold(pos: Column, n: int, k: int) -> Column:
    """Fold of position ``pos`` when ``0..n-1`` is cut into ``k`` runs like ``numpy.array_split``."""
    q, r = divmod(n, k)
    head = F.floor(pos / F.lit(q + 1))
    if q == 0:
        return head.cast("long")
    big = r * (q + 1)
    return F.when(pos < big, head).otherwise(F.lit(r) + F.floor((pos - F.lit(big)) / F.lit(q))).cast("long")


def _folds_of(data: DataFrame, assigned: DataFrame, k: int) -> Iterator[TTPair]:
    for i in range(k):
        test = F.coalesce((F.col("_fold") == i) & F.col("_sampled"), F.lit(False))
        yield TTPair(assigned.where(~test).select(data.columns), assigned.where(test).select(data.columns))


def _user_folds(
    data: DataFrame, user: str, method: SampleN | SampleFrac, folds: DataFrame, k: int, seed: int, *salt: int
) -> Iterator[TTPair]:
    """Fold ``i`` tests ``method``'s rows (ties broken by all columns) of the users ``folds`` (``user,
    _fold``) puts in fold ``i``; train is every other row."""
    key = _row_key(data, seed if method.seed is None else method.seed, *salt)
    order = Window.partitionBy(user).orderBy(key, *data.columns)
    size = F.count(F.lit(1)).over(Window.partitionBy(user))
    sampled = data.withColumn("_sampled", F.row_number().over(order) <= method.held_out(size))
    return _folds_of(data, sampled.join(folds, user, "left"), k)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"need at least one partition, got k={k}")


def partition_users(
    data: DataFrame, k: int, method: SampleN | SampleFrac, *, seed: int = 0, user: str = "user"
) -> Iterator[TTPair]:
    """LensKit's ``partition_users``: users shuffled once and cut into ``k`` nearly equal groups; fold ``i``
    tests group ``i``, holding out ``method``'s rows of each of its users; train is every other row."""
    _check_k(k)
    require_columns(data, [user], "data")
    users = data.select(user).distinct()
    n = users.count()
    folds = _shuffled(users, user, seed).select(user, _array_split_fold(F.col("_pos"), n, k).alias("_fold"))
    return _user_folds(data, user, method, folds, k, seed)


def partition_rows(data: DataFrame, k: int, *, seed: int = 0) -> Iterator[TTPair]:
    """LensKit's ``partition_rows``: rows shuffled and cut into ``k`` nearly equal test sets."""
    _check_k(k)
    key = _row_key(data, seed)
    positioned, n = dense_positions(
        data, order=[key, *[F.col(c) for c in data.columns]], out="_pos", bucket=hash_bucket(key)
    )
    assigned = positioned.withColumns(
        {"_fold": _array_split_fold(F.col("_pos"), n, k), "_sampled": F.lit(True)}
    )
    return _folds_of(data, assigned, k)


def sample_users(
    data: DataFrame,
    k: int,
    size: int,
    method: SampleN | SampleFrac,
    disjoint: bool = True,
    *,
    seed: int = 0,
    user: str = "user",
) -> Iterator[TTPair]:
    """LensKit's ``sample_users``: ``k`` test sets of ``size`` users each (disjoint unless ``disjoint=False``),
    holding out ``method``'s rows of each test user. Falls back to :func:`partition_users` when ``k * size``
    disjoint users are not available."""
    _check_k(k)
    require_columns(data, [user], "data")
    users = data.select(user).distinct()
    n = users.count()
    if disjoint and k * size >= n:
        log.warning("cannot take %d disjoint samples of %d from %d users; partitioning instead", k, size, n)
        return partition_users(data, k, method, seed=seed, user=user)
    if disjoint:
        folds = _shuffled(users, user, seed).where(F.col("_pos") < k * size)
        folds = folds.select(user, F.floor(F.col("_pos") / F.lit(size)).cast("long").alias("_fold"))
        return _user_folds(data, user, method, folds, k, seed)

    def sample(i: int) -> TTPair:
        chosen = (
            _shuffled(users, user, seed, i).where(F.col("_pos") < size).select(user, F.lit(0).alias("_fold"))
        )
        return next(_user_folds(data, user, method, chosen, 1, seed, i))

    return (sample(i) for i in range(k))


# --- Per-user splits ------------------------------------------------------------------------------


def temporal_holdout(
    data: DataFrame,
    *,
    min_rows: int = 3,
    user: str = "user",
    item: str = "item",
    timestamp: str = "timestamp",
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Per user, the last row by ``timestamp`` (ties: larger ``item``, then the other columns) to test, the one
    before to validation, the rest to train. Users with fewer than ``min_rows`` rows stay wholly in train."""
    require_columns(data, [user, item, timestamp], "data")
    others = [c for c in data.columns if c not in (user, item, timestamp)]
    latest_first = Window.partitionBy(user).orderBy(*[F.col(c).desc() for c in (timestamp, item, *others)])
    rank = F.when(
        F.count(F.lit(1)).over(Window.partitionBy(user)) >= min_rows, F.row_number().over(latest_first)
    )
    ranked = data.withColumn("_rank", F.coalesce(rank, F.lit(0)))
    return tuple(
        ranked.where(cond).drop("_rank")
        for cond in (~F.col("_rank").isin(1, 2), F.col("_rank") == 2, F.col("_rank") == 1)
    )


def user_split(
    data: DataFrame, *, test_size: float = 0.05, min_seq_size: int = 10, seed: int = 0, user: str = "user"
) -> UserSplit:
    """recnn's split: users with ``min_seq_size`` rows or fewer rejected (recnn keeps ``len > min_seq_size``),
    then ``ceil(test_size * users)`` seeded-random users to test (as scikit-learn's ``train_test_split``)."""
    if not 0 <= test_size <= 1:
        raise ValueError(f"test_size is a share of users in [0, 1], got {test_size}")
    rows = _start(data, [user])
    rows = _reject(rows, _live_count(user) <= min_seq_size, "too_few_ratings")
    kept = rows.where(_live()).select(user).distinct()
    n_test = math.ceil(test_size * kept.count())
    chosen = _shuffled(kept, user, seed).select(user, (F.col("_pos") < n_test).alias("_test"))
    rows = rows.join(chosen, user, "left")
    rows = _assign(_assign(rows, F.col("_test"), "test"), F.lit(True), "train")
    return UserSplit(rows.select(*data.columns, PART, REASON))
