"""IdIndex: raw user/item/session ids (int or string) to dense ``0..n-1`` indices, computed in Spark.

The numbering is deterministic and parallel: ids are hashed into a fixed number of buckets,
numbered by (bucket, id) inside each bucket with a window partitioned by bucket, and shifted by
the sizes of the buckets before them (one small aggregate of ``buckets`` rows). Nothing is
collected per id and no window runs over a single partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

DEFAULT_BUCKETS = 64
UNKNOWN_OPTIONS = ("error", "drop", "reserve")


def dense_positions(
    df: DataFrame, order: list[Column], out: str, *, buckets: int = DEFAULT_BUCKETS, bucket_key: Column
) -> DataFrame:
    """Add column ``out``: a position ``0..n-1`` that is a bijection over the rows of ``df``.

    Rows are grouped into ``buckets`` by ``pmod(xxhash64(bucket_key), buckets)``; inside a
    bucket they are numbered in ``order`` (which must make rows unique for determinism).
    """
    bucketed = df.withColumn("_bucket", F.pmod(F.xxhash64(bucket_key), F.lit(buckets)))
    sizes = bucketed.groupBy("_bucket").count().orderBy("_bucket").toPandas()
    sizes["_start"] = sizes["count"].cumsum() - sizes["count"]
    starts = df.sparkSession.createDataFrame(sizes[["_bucket", "_start"]])
    window = Window.partitionBy("_bucket").orderBy(*order)
    return (
        bucketed.join(F.broadcast(starts), "_bucket")
        .withColumn(out, (F.row_number().over(window) - 1 + F.col("_start")).cast("long"))
        .drop("_bucket", "_start")
    )
