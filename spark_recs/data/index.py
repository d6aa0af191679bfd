"""IdIndex: raw user/item/session ids (int or string) to dense ``0..n-1`` indices, computed in Spark by
:func:`dense_positions` over hash buckets: deterministic and parallel, nothing is collected per id and no
window runs over a single partition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_recs.runtime import cached

log = logging.getLogger(__name__)

DEFAULT_BUCKETS = 64
BROADCAST_LIMIT = 1_000_000
UNKNOWN_OPTIONS = ("error", "drop", "reserve")


def hash_bucket(key: Column, buckets: int = DEFAULT_BUCKETS) -> Column:
    """A bucket ``0..buckets-1`` from a hash of ``key``: spreads rows evenly, in no particular order."""
    return F.pmod(F.xxhash64(key), F.lit(buckets))


def dense_positions(df: DataFrame, order: list[Column], out: str, *, bucket: Column) -> tuple[DataFrame, int]:
    """Add column ``out``: a position ``0..n-1`` that is a bijection over the rows of ``df``; return it and n.

    Rows are numbered by (``bucket``, ``order``): inside each bucket with a window partitioned by
    bucket, shifted by the sizes of the buckets before it (one aggregate of one row per bucket).
    ``order`` must make rows unique for determinism. With :func:`hash_bucket` positions are a
    deterministic shuffle; with a bucket that grows with ``order`` (ranges of a value) they follow
    the global order.
    """
    bucketed = df.withColumn("_bucket", bucket.cast("long"))
    sizes = bucketed.groupBy("_bucket").count().orderBy("_bucket").toPandas()
    sizes["_start"] = sizes["count"].cumsum() - sizes["count"]
    # An explicit schema: with no rows (no ids) there is nothing to infer the types from.
    starts = df.sparkSession.createDataFrame(sizes[["_bucket", "_start"]], "_bucket long, _start long")
    window = Window.partitionBy("_bucket").orderBy(*order)
    positioned = (
        bucketed.join(F.broadcast(starts), "_bucket")
        .withColumn(out, (F.row_number().over(window) - 1 + F.col("_start")).cast("long"))
        .drop("_bucket", "_start")
    )
    return positioned, int(sizes["count"].sum())


class UnknownIdError(KeyError):
    """Ids at transform time that the index was not fitted on."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class IdIndex:
    """A fitted mapping ``id -> index`` (``0..size-1``) held as a Spark DataFrame ``(id, index)``.

    ``unknown`` decides what :meth:`transform` does with ids not in the index: ``"error"``
    raises (with the count and examples), ``"drop"`` removes those rows and records how many in
    :attr:`dropped`, ``"reserve"`` maps them all to the reserved index ``size``.
    """

    mapping: DataFrame
    size: int
    name: str = "id"
    unknown: str = "error"
    dropped: int = 0

    def __post_init__(self) -> None:
        _check_unknown(self.unknown)  # also for load(): an unchecked typo would silently drop rows

    @classmethod
    def fit(
        cls, df: DataFrame, column: str, *, unknown: str = "error", buckets: int = DEFAULT_BUCKETS
    ) -> IdIndex:
        """Index the distinct non-null values of ``df[column]``; deterministic for the same set of ids."""
        return cls._fit(df, column, unknown, buckets)[0]

    @classmethod
    def fit_transform(
        cls,
        df: DataFrame,
        column: str,
        out: str | None = None,
        *,
        unknown: str = "error",
        buckets: int = DEFAULT_BUCKETS,
    ) -> tuple[IdIndex, DataFrame]:
        """:meth:`fit` on ``df[column]`` and :meth:`transform` ``df`` with it, the same index and rows, without
        the pass over ``df`` that counts unknown ids: the only ids of ``df`` the index lacks are nulls, and
        fit's distinct ids say whether there are any."""
        index, values = cls._fit(df, column, unknown, buckets)
        if unknown == "reserve" or not values.where(F.col("id").isNull()).isEmpty():
            return index, index.transform(df, column, out)
        return index, _put(index._joined(df, column), df.columns, "_index", column, out or column)

    @classmethod
    def _fit(cls, df: DataFrame, column: str, unknown: str, buckets: int) -> tuple[IdIndex, DataFrame]:
        """The index of ``df[column]`` and the column's distinct values (``id``, null included), computed
        once (:func:`~spark_recs.runtime.cached`) for the bucket sizes, the positions and the caller."""
        _check_unknown(unknown)
        values = cached(df.select(F.col(column).alias("id")).distinct())
        ids = values.where(F.col("id").isNotNull())
        # Hash integers as long, so int and bigint columns with the same ids get the same mapping.
        integral = dict(ids.dtypes)["id"] in ("tinyint", "smallint", "int", "bigint")
        key = F.col("id").cast("long") if integral else F.col("id")
        mapping, size = dense_positions(ids, [F.col("id")], "index", bucket=hash_bucket(key, buckets))
        return cls(cached(mapping), size, column, unknown), values  # the mapping: once for every transform

    def transform(self, df: DataFrame, column: str | None = None, out: str | None = None) -> DataFrame:
        """Replace (or, with ``out``, add) ``column`` by its dense index; unknown ids per :attr:`unknown`."""
        column = column or self.name
        out = out or column
        joined = self._joined(df, column)
        if self.unknown == "reserve":
            joined = joined.withColumn("_index", F.coalesce(F.col("_index"), F.lit(self.size).cast("long")))
        else:
            missing = joined.where(F.col("_index").isNull())
            n_missing = missing.count()
            if n_missing and self.unknown == "error":
                examples = [
                    r[0] for r in missing.select(column).distinct().orderBy(column).limit(5).collect()
                ]
                raise UnknownIdError(
                    f"{n_missing:,} row(s) have {column} values not in the {self.name} index (e.g. {examples}); "
                    "pass unknown='drop' to drop them (counted) or unknown='reserve' to map them to a reserved index"
                )
            self.dropped = n_missing
            if n_missing:
                log.info("Dropped %d row(s) with %s unknown to the %s index", n_missing, column, self.name)
            joined = joined.where(F.col("_index").isNotNull())
        return _put(joined, df.columns, "_index", column, out)

    def _joined(self, df: DataFrame, column: str) -> DataFrame:
        """``df`` with the index of ``column`` as ``_index`` (null for an id not in the index)."""
        return df.join(self._lookup(), F.col(column) == F.col("_id"), "left")

    def inverse_transform(
        self, df: DataFrame, column: str | None = None, out: str | None = None
    ) -> DataFrame:
        """Map dense indices in ``column`` back to raw ids (the reserved index maps to null)."""
        column = column or self.name
        out = out or column
        joined = df.join(self._lookup(), F.col(column) == F.col("_index"), "left")
        return _put(joined, df.columns, "_id", column, out)

    def _lookup(self) -> DataFrame:
        lookup = self.mapping.select(F.col("id").alias("_id"), F.col("index").alias("_index"))
        return F.broadcast(lookup) if self.size <= BROADCAST_LIMIT else lookup

    def save(self, target: str) -> None:
        """Persist the mapping as a table or path (see :func:`spark_recs.data.io.write_table`)."""
        from spark_recs.data.io import write_table

        write_table(self.mapping, target)

    @classmethod
    def load(cls, spark, source: str, name: str = "id", unknown: str = "error") -> IdIndex:
        """Load a mapping saved by :meth:`save`."""
        from spark_recs.data.io import read_table

        mapping = read_table(spark, source)
        return cls(mapping, int(mapping.count()), name, unknown)


def _check_unknown(unknown: str) -> None:
    if unknown not in UNKNOWN_OPTIONS:
        raise ValueError(f"unknown must be one of {UNKNOWN_OPTIONS}, not {unknown!r}")


def _put(joined: DataFrame, columns: list[str], value: str, column: str, out: str) -> DataFrame:
    """Select ``columns`` from ``joined`` with ``value`` replacing ``column`` (or added as ``out``)."""
    cols = [F.col(value).alias(out) if c == column and out == column else F.col(c) for c in columns]
    if out != column:
        cols.append(F.col(value).alias(out))
    return joined.select(*cols)
