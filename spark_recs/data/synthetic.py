"""Deterministic synthetic data generated in Spark: the embedded default of the demo and the benchmarks.

Output depends only on the arguments, never on partitioning or engine: sessions are generated in fixed
blocks of events, each from its own NumPy generator seeded by ``(seed, block)``; ratings are column
expressions over ``xxhash64(seed, ...)``. Nothing is built on the driver, so any size fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_recs.data.schema import SessionColumns

START_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z
_TWO_53 = float(1 << 53)


# --- sessions -------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _zipf_cdf(n_items: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


@lru_cache(maxsize=4)
def _successors(seed: int, n_items: int, n_successors: int) -> np.ndarray:
    """Each item's preferred next items (0-based), the same in every worker for a seed."""
    return np.random.default_rng([seed, 1]).integers(0, n_items, size=(n_items, n_successors))


@dataclass(frozen=True, kw_only=True)
class SessionStream(SessionColumns):
    """The click stream of :func:`synthetic_sessions`, generated in independent blocks of ``block_size`` events.

    Sessions never cross a block; lengths are geometric (a quarter of the sessions have one event at mean
    4). The first item follows Zipf popularity; each next item is, with ``follow_prob``, one of the previous
    item's ``n_successors`` preferred successors (weights 1/2, 1/4, ...), else a fresh Zipf draw. Sessions
    start uniformly over ``days`` days from 2024-01-01 UTC, events ``1 + Exp(mean_gap_s)`` seconds apart.
    """

    n_events: int
    n_items: int
    seed: int = 0
    mean_session_length: float = 4.0
    zipf_exponent: float = 1.0
    n_successors: int = 3
    follow_prob: float = 0.7
    days: float = 30
    mean_gap_s: float = 60.0
    block_size: int = 8192

    def __post_init__(self) -> None:
        if min(self.n_events, self.n_items, self.mean_session_length) < 1 or not 0 <= self.follow_prob <= 1:
            raise ValueError(
                "need n_events >= 1, n_items >= 1, 0 <= follow_prob <= 1 and mean_session_length >= 1"
            )

    def block(self, block: int) -> pd.DataFrame:
        """Events ``block * block_size ..`` of the stream, from a generator seeded by ``(seed, block)``."""
        size = min(self.block_size, self.n_events - block * self.block_size)
        rng = np.random.default_rng([self.seed, 0, block])
        lengths = rng.geometric(1.0 / self.mean_session_length, size)
        ends = np.cumsum(lengths)
        n_sessions = int(np.searchsorted(ends, size)) + 1
        lengths = lengths[:n_sessions]
        lengths[-1] = size - (ends[n_sessions - 2] if n_sessions > 1 else 0)
        starts = np.cumsum(lengths) - lengths

        cdf = _zipf_cdf(self.n_items, self.zipf_exponent)
        successors = _successors(self.seed, self.n_items, self.n_successors)
        weights = 0.5 ** np.arange(1, self.n_successors + 1)
        items = np.empty(size, dtype=np.int64)
        items[starts] = np.searchsorted(cdf, rng.random(n_sessions), side="right")
        for t in range(1, int(lengths.max())):
            at = starts[lengths > t] + t
            follow = rng.random(at.size) < self.follow_prob
            choice = rng.choice(self.n_successors, size=at.size, p=weights / weights.sum())
            fresh = np.searchsorted(cdf, rng.random(at.size), side="right")
            items[at] = np.where(follow, successors[items[at - 1], choice], fresh)

        gaps = 1.0 + rng.exponential(self.mean_gap_s, size)
        gaps[starts] = 0.0
        elapsed = np.cumsum(gaps)
        elapsed -= np.repeat(elapsed[starts], lengths)
        session_start = START_TIME + rng.random(n_sessions) * self.days * 86400
        first_session = block * self.block_size + np.arange(n_sessions, dtype=np.int64)
        return pd.DataFrame(
            {
                self.session_key: np.repeat(first_session, lengths) + 1,
                self.item_key: np.minimum(items, self.n_items - 1) + 1,
                self.time_key: np.round(np.repeat(session_start, lengths) + elapsed, 3),
            }
        )


def synthetic_sessions(
    spark: SparkSession,
    n_events: int = 100_000,
    n_items: int = 1_000,
    *,
    partitions: int | None = None,
    **options,
) -> DataFrame:
    """Exactly ``n_events`` click events ``session_key, item_key, time_key`` (ids from 1, time in seconds) of
    the :class:`SessionStream` whose other fields ``options`` sets; the items' popularity and transitions let
    a sequence model beat popularity. ``partitions`` changes only parallelism, never the data.
    """
    stream = SessionStream(n_events=n_events, n_items=n_items, **options)

    def generate(batches):
        for batch in batches:
            for block in batch["id"]:
                yield stream.block(int(block))

    n_blocks = math.ceil(n_events / stream.block_size)
    blocks = spark.range(0, n_blocks, 1, partitions) if partitions else spark.range(n_blocks)
    schema = f"`{stream.session_key}` long, `{stream.item_key}` long, `{stream.time_key}` double"
    return blocks.mapInPandas(generate, schema)


# --- ratings --------------------------------------------------------------------------------------


def _uniform(seed: int, tag: str, *cols: Column) -> Column:
    """A uniform draw in (0, 1) that is a pure function of (seed, tag, cols)."""
    return (F.pmod(F.xxhash64(F.lit(seed), F.lit(tag), *cols), F.lit(1 << 53)) + F.lit(0.5)) / F.lit(_TWO_53)


def _normal(seed: int, tag: str, *cols: Column) -> Column:
    """A standard normal draw (Box-Muller) that is a pure function of (seed, tag, cols)."""
    radius = F.sqrt(F.lit(-2.0) * F.log(_uniform(seed, tag + ":r", *cols)))
    return radius * F.cos(F.lit(2 * math.pi) * _uniform(seed, tag + ":a", *cols))


def synthetic_ratings(
    spark: SparkSession,
    n_users: int = 1_000,
    n_items: int = 2_000,
    n_ratings: int = 50_000,
    *,
    seed: int = 0,
    n_factors: int = 8,
    min_user_ratings: int = 5,
    popularity_offset: float = 10.0,
    noise: float = 0.4,
    years: float = 3.0,
    partitions: int | None = None,
    user: str = "user",
    item: str = "item",
    rating: str = "rating",
    timestamp: str = "timestamp",
) -> DataFrame:
    """Explicit ratings ``user, item, rating, timestamp`` (ids from 1, ratings 0.5..5 in 0.5 steps, seconds).

    ``n_ratings`` draws of (user, item): the first ``min_user_ratings`` per user round-robin, the rest
    skewed towards low user ids; items Zipf-like, ``p(i) ~ 1 / (i + popularity_offset)``. Repeated pairs
    are merged, so slightly fewer than ``n_ratings`` rows come out. Rating = 3.5 + user bias + item bias +
    ``n_factors`` latent factors + noise, rounded to a half star; every value depends only on
    (seed, user, item), so ``partitions`` changes only parallelism.
    """
    if min(n_users, n_items, n_ratings, n_factors) < 1:
        raise ValueError("need n_users, n_items, n_ratings and n_factors >= 1")
    rows = spark.range(0, n_ratings, 1, partitions) if partitions else spark.range(n_ratings)
    r = F.col("id")
    skewed_user = F.floor(F.lit(float(n_users)) * F.pow(_uniform(seed, "user", r), F.lit(2.0)))
    user_0 = F.when(r < n_users * min_user_ratings, F.pmod(r, F.lit(n_users))).otherwise(skewed_user)
    c, n = float(popularity_offset), float(n_items)
    item_0 = F.floor(F.lit(c) * F.pow(F.lit((n + c) / c), _uniform(seed, "item", r)) - F.lit(c))
    pairs = rows.select(
        (F.least(user_0, F.lit(n_users - 1)) + 1).cast("long").alias(user),
        (F.least(item_0, F.lit(n_items - 1)) + 1).cast("long").alias(item),
    ).distinct()

    u, i = F.col(user), F.col(item)
    factor_scale = (0.36 / n_factors) ** 0.25  # the dot product then has standard deviation ~0.6
    dot = sum(
        (_normal(seed, f"p{k}", u) * _normal(seed, f"q{k}", i) for k in range(n_factors)), F.lit(0.0)
    ) * F.lit(factor_scale**2)
    score = (
        F.lit(3.5)
        + F.lit(0.35) * _normal(seed, "bu", u)
        + F.lit(0.45) * _normal(seed, "bi", i)
        + dot
        + F.lit(noise) * _normal(seed, "noise", u, i)
    )
    span = years * 365 * 86400
    user_start = F.lit(float(START_TIME)) + _uniform(seed, "t0", u) * F.lit(span * 0.8)
    when = user_start + _uniform(seed, "t", u, i) * F.lit(span * 0.2)
    return pairs.select(
        u,
        i,
        (F.least(F.greatest(F.round(score * 2), F.lit(1.0)), F.lit(10.0)) / 2).cast("double").alias(rating),
        F.floor(when).cast("long").alias(timestamp),
    )
