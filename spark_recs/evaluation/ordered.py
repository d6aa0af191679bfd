"""Sums and means of Spark groups that do not depend on the order rows arrive in: the terms are sorted
before they are added, so a result has the same bits on any partitioning, engine and run."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def ordered_sum(values: Column) -> Column:
    """Sum of a group's non-null ``values`` in ascending order (0.0 for none): the same bits whatever order
    the rows come in (Spark's ``sum`` adds in arrival order, which changes with the partitioning)."""
    return F.aggregate(F.array_sort(F.collect_list(values.cast("double"))), F.lit(0.0), lambda t, v: t + v)


def ordered_mean(values: Column) -> Column:
    """Mean of a group's non-null ``values`` (null for none), summed as by :func:`ordered_sum`."""
    n = F.count(values)
    return F.when(n > 0, ordered_sum(values) / n)
