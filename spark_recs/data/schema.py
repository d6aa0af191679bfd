"""Column mappings and validation: every input row is either accepted (typed) or rejected with a reason.

Nothing is dropped silently: :func:`validate` returns the accepted rows with parsed columns, the
rejected rows (their original values as strings plus a ``reason`` column) and the counts, with
``rows_in == accepted + rejected`` checked.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_recs.runtime import cached

log = logging.getLogger(__name__)


class SchemaError(ValueError):
    """Input data does not have the columns or types a step needs."""


@dataclass(frozen=True)
class SessionColumns:
    """Column names of a session log (GRU4Rec's ``session_key``/``item_key``/``time_key``)."""

    session_key: str = "SessionId"
    item_key: str = "ItemId"
    time_key: str = "Time"

    @property
    def ids(self) -> list[str]:
        return [self.session_key, self.item_key]


@dataclass(frozen=True)
class RatingColumns:
    """Column names of a user-item interaction table (LensKit's ``user, item, rating, timestamp``)."""

    user: str = "user"
    item: str = "item"
    rating: str | None = "rating"
    timestamp: str | None = "timestamp"

    @property
    def ids(self) -> list[str]:
        return [self.user, self.item]


def require_columns(df: DataFrame, columns: list[str], what: str = "input") -> None:
    """Raise :class:`SchemaError` naming each missing column, the columns found and the closest match."""
    found = list(df.columns)
    missing = [c for c in columns if c not in found]
    if missing:
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, found, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SchemaError(
            f"{what} is missing column(s) {', '.join(hints)}; columns found: {found}. "
            "Rename the columns or pass the column mapping (e.g. session_key=/item_key=/time_key=)."
        )


@dataclass
class Validated:
    """Result of :func:`validate`: typed accepted rows, rejected rows with ``reason``, and counts."""

    accepted: DataFrame
    rejected: DataFrame
    rows_in: int
    n_accepted: int
    n_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.rejected_by_reason.items())) or "none"
        return (
            f"rows in = {self.rows_in:,} = accepted {self.n_accepted:,} + rejected {self.n_rejected:,}"
            f" (rejected: {reasons})"
        )


def _parsed_id(col: str, id_type: str) -> Column:
    raw = F.col(col)
    if id_type == "long":
        return F.trim(raw.cast("string")).try_cast("long")
    return F.trim(raw.cast("string"))


def _parsed_time(col: str, dtype: str) -> Column:
    """Seconds since the epoch as a double, from numbers or timestamp/date strings; null if unparseable."""
    raw = F.col(col)
    if dtype in ("timestamp", "timestamp_ntz", "date"):
        return F.unix_micros(raw.cast("timestamp")) / F.lit(1e6)
    as_number = raw.try_cast("double")
    if dtype != "string":
        return as_number
    as_time = F.try_to_timestamp(F.trim(raw))
    return F.coalesce(as_number, F.unix_micros(as_time) / F.lit(1e6))


def _not_finite(value: Column) -> Column:
    """Null, NaN or infinite: what a cast lets through but no time or rating can be."""
    return value.isNull() | F.isnan(value) | (F.abs(value) == F.lit(float("inf")))


def _id_types(df: DataFrame, id_columns: list[str], id_type: str) -> dict[str, str]:
    """Decide per id column whether ids are integers (``long``) or strings, in one aggregate pass."""
    if id_type != "auto":
        return {c: id_type for c in id_columns}
    numeric = {
        f.name for f in df.schema.fields if f.dataType.typeName() in ("integer", "long", "short", "byte")
    }
    to_check = [c for c in id_columns if c not in numeric]
    types = {c: "long" for c in id_columns if c in numeric}
    if to_check:
        row = df.agg(
            *[
                F.sum((F.col(c).isNotNull() & F.trim(F.col(c)).try_cast("long").isNull()).cast("long")).alias(
                    c
                )
                for c in to_check
            ]
        ).first()
        types.update({c: "string" if (row[c] or 0) > 0 else "long" for c in to_check})
    return types


def validate(
    df: DataFrame,
    id_columns: list[str],
    time_column: str | None = None,
    rating_column: str | None = None,
    *,
    id_type: str = "auto",
    what: str = "input",
) -> Validated:
    """Type and check ``df``; return accepted and rejected rows with counts.

    Rejection reasons, first match wins: ``null <id column>``, ``unparseable <time column>``,
    ``non-numeric <rating column>``, ``duplicate event`` (an exact copy of an earlier row).
    ``id_type`` is ``"auto"`` (integers when every id parses as one, else strings), ``"long"`` or
    ``"string"``. Times become epoch seconds (double), ratings doubles.
    """
    needed = list(id_columns) + [c for c in (time_column, rating_column) if c]
    require_columns(df, needed, what)
    if id_type not in ("auto", "long", "string"):
        raise ValueError(f"id_type must be 'auto', 'long' or 'string', not {id_type!r}")
    dtypes = dict(df.dtypes)
    types = _id_types(df, id_columns, id_type)

    parsed = {c: _parsed_id(c, types[c]) for c in id_columns}
    checks: list[tuple[Column, str]] = [
        (parsed[c].isNull(), f"null or non-integer {c}" if id_type == "long" else f"null {c}")
        for c in id_columns
    ]
    if time_column:
        parsed[time_column] = _parsed_time(time_column, dtypes[time_column])
        checks.append((_not_finite(parsed[time_column]), f"unparseable {time_column}"))
    if rating_column:
        parsed[rating_column] = F.col(rating_column).try_cast("double")
        checks.append((_not_finite(parsed[rating_column]), f"non-numeric {rating_column}"))

    reason = F.lit(None).cast("string")
    for failed, why in reversed(checks):
        reason = F.when(failed, F.lit(why)).otherwise(reason)

    others = [c for c in df.columns if c not in parsed]
    raw = [F.col(c).cast("string").alias(f"_raw_{i}") for i, c in enumerate(df.columns)]
    typed = df.select(*raw, *[expr.alias(c) for c, expr in parsed.items()], *others, reason.alias("reason"))
    # An exact duplicate repeats every original value; identical rows make the window order irrelevant.
    copies = Window.partitionBy(*[f"_raw_{i}" for i in range(len(df.columns))]).orderBy(F.lit(1))
    duplicate = F.col("reason").isNull() & (F.row_number().over(copies) > 1)
    typed = cached(
        typed.withColumn("reason", F.when(duplicate, F.lit("duplicate event")).otherwise(F.col("reason")))
    )
    accepted = typed.where(F.col("reason").isNull()).select(*df.columns)
    rejected = typed.where(F.col("reason").isNotNull()).select(
        *[F.col(f"_raw_{i}").alias(c) for i, c in enumerate(df.columns)], "reason"
    )
    counts = typed.groupBy("reason").count().toPandas()
    by_reason = {r: int(n) for r, n in zip(counts["reason"], counts["count"]) if r is not None}
    n_accepted = int(counts.loc[counts["reason"].isna(), "count"].sum())
    n_rejected = sum(by_reason.values())
    result = Validated(accepted, rejected, n_accepted + n_rejected, n_accepted, n_rejected, by_reason)
    log.info("%s: %s", what, result.summary())
    return result
