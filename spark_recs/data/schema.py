"""Column mappings and validation: every input row is either accepted (typed) or rejected with a reason.

Nothing is dropped silently: :func:`validate` returns the accepted rows with parsed columns, the
rejected rows (their original values as strings plus a ``reason`` column) and the counts, with
``rows_in == accepted + rejected`` checked.
"""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_recs.runtime import cached

log = logging.getLogger(__name__)

# A time string must start with a whole date: Spark fills a missing date with the run's day.
_FULL_DATE = r"^[+-]?\d{4,}-\d{1,2}-\d{1,2}(\D|$)"
# Epoch seconds beyond this are after the year 5138, but as milliseconds they are 1973 onwards.
_MILLISECONDS = 1e11
# At most this share of non-integer ids in a column looks like a few bad rows, not string ids.
_FEW_NON_INTEGERS = 0.01
_SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'", ",": "','"}


class SchemaError(ValueError):
    """Input data lacks columns a step needs; says which, what was found and how to fix it.

    ``settings`` maps a column to what names it: a config key (``data.session_key``) or a command-line
    option (``--user-col``); :meth:`message` then words the fix for the API or the command line.
    ``hint`` adds ``(api, command_line)`` texts, e.g. that the file looks like ratings.
    """

    def __init__(self, what: str, missing: list[str], found: list[str], settings=None, hint=None) -> None:
        self.what, self.missing, self.found = what, list(missing), list(found)
        self.settings, self.hint = dict(settings or {}), hint
        super().__init__(self.message())

    def fixed_by(self, settings: dict[str, str], hint: tuple[str, str] | None = None) -> SchemaError:
        """The same error, with the settings (and a hint) that fix it."""
        return SchemaError(
            self.what, self.missing, self.found, {**self.settings, **settings}, hint or self.hint
        )

    def message(self, command_line: bool = False) -> str:
        closest = {m: difflib.get_close_matches(m, self.found, n=1) for m in self.missing}
        named = [f"{m!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for m, c in closest.items()]
        text = f"{self.what} is missing column(s) {', '.join(named)}; columns found: {self.found}. "
        fixes = [
            _setting(self.settings[m], c[0] if c else "<column>", command_line)
            for m, c in closest.items()
            if m in self.settings
        ]
        text += (
            f"Rename the columns or pass {' '.join(fixes)}"
            if fixes
            else "Rename the columns or pass the column mapping (e.g. session_key=/item_key=/time_key=)"
        )
        if len(self.found) == 1:
            for sep, name in _SEPARATORS.items():
                if sep in self.found[0]:
                    text += f"; the header looks {name}-separated: pass " + (
                        f"--sep {sep!r}" if command_line else f"sep={sep!r}"
                    )
                    break
        if self.hint:
            text += f"; {self.hint[1] if command_line else self.hint[0]}"
        return text + "."


def _setting(setting: str, value: str, command_line: bool) -> str:
    """How to set ``setting`` to ``value``: ``--set data.session_key=X`` / ``--user-col X`` on the command
    line, ``data.session_key=X`` / ``user_col='X'`` from Python."""
    if setting.startswith("--"):
        return f"{setting} {value}" if command_line else f"{setting[2:].replace('-', '_')}={value!r}"
    return f"--set {setting}={value}" if command_line else f"{setting}={value}"


@dataclass(frozen=True)
class SessionColumns:
    """Column names of a session log (GRU4Rec's ``session_key``/``item_key``/``time_key``): what the
    session functions taking ``**keys`` accept."""

    session_key: str = "SessionId"
    item_key: str = "ItemId"
    time_key: str = "Time"

    @property
    def ids(self) -> list[str]:
        return [self.session_key, self.item_key]

    @property
    def names(self) -> list[str]:
        return [*self.ids, self.time_key]


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


def require_columns(
    df: DataFrame, columns: list[str], what: str = "input", settings: dict[str, str] | None = None
) -> None:
    """Raise :class:`SchemaError` naming each missing column, the columns found, the closest match and,
    with ``settings`` (column -> config key or option naming it), the setting that fixes it."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(what, missing, list(df.columns), settings)


@dataclass
class Validated:
    """Result of :func:`validate`: typed accepted rows, rejected rows with ``reason``, and counts."""

    accepted: DataFrame
    rejected: DataFrame
    rows_in: int
    n_accepted: int
    n_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)  # suspicious but accepted values, counted
    fixes: dict[str, str] = field(default_factory=dict)  # how to fix each warning, by the same key

    def summary(self) -> str:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.rejected_by_reason.items())) or "none"
        text = (
            f"rows in = {self.rows_in:,} = accepted {self.n_accepted:,} + rejected {self.n_rejected:,}"
            f" (rejected: {reasons})"
        )
        if self.warnings:
            text += "; warnings: " + "; ".join(
                f"{w}: {n:,} ({self.fixes[w]})" for w, n in sorted(self.warnings.items())
            )
        return text


def _id_text(col: str) -> Column:
    """The trimmed id as a string; null when blank, like a missing id."""
    text = F.trim(F.col(col).cast("string"))
    return F.when(text != F.lit(""), text)


def date_time_seconds(raw: Column) -> Column:
    """Epoch seconds (double) of a timestamp or date string with year, month and day; else null."""
    text = F.trim(raw)
    return F.when(text.rlike(_FULL_DATE), F.unix_micros(F.try_to_timestamp(text)) / F.lit(1e6))


def _parsed_time(col: str, dtype: str) -> Column:
    """Seconds since the epoch as a double, from numbers or timestamp/date strings; null if unparseable."""
    raw = F.col(col)
    if dtype in ("timestamp", "timestamp_ntz", "date"):
        return F.unix_micros(raw.cast("timestamp")) / F.lit(1e6)
    as_number = raw.try_cast("double")
    if dtype != "string":
        return as_number
    return F.coalesce(as_number, date_time_seconds(raw))


def _not_finite(value: Column) -> Column:
    """Null, NaN or infinite: what a cast lets through but no time or rating can be."""
    return value.isNull() | F.isnan(value) | (F.abs(value) == F.lit(float("inf")))


def _requested_types(id_columns: list[str], id_type: str | dict[str, str]) -> dict[str, str]:
    """``id_type`` per id column (a dict names some columns; the others are ``auto``), checked."""
    requested = {c: id_type.get(c, "auto") if isinstance(id_type, dict) else id_type for c in id_columns}
    bad = {c: t for c, t in requested.items() if t not in ("auto", "long", "string")}
    if bad or (isinstance(id_type, dict) and set(id_type) - set(id_columns)):
        raise ValueError(
            f"id_type must be 'auto', 'long' or 'string' (or a dict of them by id column), not {id_type!r}"
        )
    return requested


def _id_types(df: DataFrame, requested: dict[str, str]) -> tuple[dict[str, str], dict[str, tuple[int, str]]]:
    """Decide for each ``auto`` id column whether ids are integers (``long``) or strings, in one aggregate
    pass; the other columns keep their requested type.

    Also returns ``{warning: (count, fix)}`` for each column that is strings only because of a few
    non-integer ids (a model trained on those strings matches none of the integer ids elsewhere).
    """
    numeric = {
        f.name for f in df.schema.fields if f.dataType.typeName() in ("integer", "long", "short", "byte")
    }
    types = {c: t for c, t in requested.items() if t != "auto"}
    types |= {c: "long" for c, t in requested.items() if t == "auto" and c in numeric}
    to_check = [c for c in requested if c not in types]
    warnings: dict[str, tuple[int, str]] = {}
    if not to_check:
        return types, warnings
    aggregates = []
    for i, c in enumerate(to_check):
        text = _id_text(c)
        bad = text.isNotNull() & text.try_cast("long").isNull()
        aggregates += [
            F.count(text).alias(f"ids{i}"),
            F.count(F.when(bad, 1)).alias(f"bad{i}"),
            F.min(F.when(bad, text)).alias(f"first{i}"),
            F.max(F.when(bad, text)).alias(f"last{i}"),
        ]
    row = df.agg(*aggregates).first()
    for i, c in enumerate(to_check):
        bad = row[f"bad{i}"]
        types[c] = "string" if bad > 0 else "long"
        if 0 < bad <= _FEW_NON_INTEGERS * row[f"ids{i}"]:
            examples = ", ".join(repr(v) for v in dict.fromkeys([row[f"first{i}"], row[f"last{i}"]]))
            warnings[f"non-integer {c}"] = (
                bad,
                f"e.g. {examples}; they make every {c} a string: fix the rows, "
                'or pass id_type="long" to reject them',
            )
    return types, warnings


def _time_warnings(time_column: str) -> dict[str, tuple[Column, str]]:
    """``{warning: (condition, fix)}`` for parsed times that are accepted but suspicious."""
    t, now = F.col(time_column), time.time()  # "now" only counts warnings: the output never depends on it
    return {
        f"{time_column} looks like milliseconds": (
            t > F.lit(_MILLISECONDS),
            f"divide by 1000: {time_column} must be epoch seconds",
        ),
        f"{time_column} in the future": (
            (t > F.lit(now)) & (t <= F.lit(_MILLISECONDS)),
            "after the time of this run: check the source's clock and units",
        ),
        f"negative {time_column}": (t < F.lit(0), "before 1970: check the source's units and sign"),
    }


def _counts(
    typed: DataFrame, time_column: str | None
) -> tuple[dict[str, int], int, dict[str, tuple[int, str]]]:
    """Rows per rejection reason, accepted rows and ``{warning: (count, fix)}`` of accepted times, in one job."""
    time_warnings = _time_warnings(time_column) if time_column else {}
    flags = [
        F.count(F.when(flag, 1)).alias(f"_warn_{i}") for i, (flag, _) in enumerate(time_warnings.values())
    ]
    counts = typed.groupBy("reason").agg(F.count(F.lit(1)).alias("count"), *flags).toPandas()
    by_reason = {r: int(n) for r, n in zip(counts["reason"], counts["count"]) if r is not None}
    accepted = counts[counts["reason"].isna()]  # one row, or none when every row is rejected
    found = {}
    for i, (name, (_, fix)) in enumerate(time_warnings.items()):
        n = int(accepted[f"_warn_{i}"].sum())
        if n:
            found[name] = (n, fix)
    return by_reason, int(accepted["count"].sum()), found


def _comparable(value: Column, kind: str) -> Column:
    """``value`` as a sort key on which equal values tie on every engine: text for a map or variant (not
    sortable), 0.0 for -0.0 (one value for Spark, two for engines that sort by bits)."""
    if kind in ("map", "variant"):
        return value.cast("string")
    if kind in ("float", "double"):
        return F.when(value == F.lit(0.0), F.lit(0.0).cast(kind)).otherwise(value)
    return value


def validate(
    df: DataFrame,
    id_columns: list[str],
    time_column: str | None = None,
    rating_column: str | None = None,
    *,
    id_type: str | dict[str, str] = "auto",
    duplicates: bool = True,
    what: str = "input",
) -> Validated:
    """Type and check ``df``; return accepted and rejected rows with counts.

    Rejection reasons, first match wins: ``null <id column>`` (``null or non-integer <id column>`` for a
    ``long`` column), ``unparseable <time column>``, ``non-numeric <rating column>``, ``duplicate event``
    (an exact copy of an earlier row; only with ``duplicates``). ``id_type`` is ``"auto"`` (integers when
    every id parses as one, else strings), ``"long"`` or ``"string"``, or a dict of these by id column
    (columns it leaves out are ``auto``); a blank id is a null id. Times become epoch seconds (double),
    ratings doubles; a time string needs a date with year, month and day. Accepted but suspicious values
    (times that look like milliseconds, negative or future times, a few non-integer ids among integers)
    are counted in ``warnings`` and logged. With ``duplicates`` the rows come partitioned by the first id
    column, so a per-session or per-user step that follows (the GRU4Rec split) needs no shuffle of its own.
    """
    needed = list(id_columns) + [c for c in (time_column, rating_column) if c]
    require_columns(df, needed, what)
    requested = _requested_types(id_columns, id_type)
    dtypes = dict(df.dtypes)
    types, id_warnings = _id_types(df, requested)

    parsed = {c: _id_text(c).try_cast("long") if types[c] == "long" else _id_text(c) for c in id_columns}
    checks: list[tuple[Column, str]] = [
        (parsed[c].isNull(), f"null or non-integer {c}" if requested[c] == "long" else f"null {c}")
        for c in id_columns
    ]
    if time_column:
        parsed[time_column] = _parsed_time(time_column, dtypes[time_column])
        checks.append((_not_finite(parsed[time_column]), f"unparseable {time_column}"))
    if rating_column:
        parsed[rating_column] = F.col(rating_column).try_cast("double")
        checks.append((_not_finite(parsed[rating_column]), f"non-numeric {rating_column}"))
    # A column read in its target type is its own parse: it needs no copy of the value as read.
    as_read = {c for c in id_columns if dtypes[c] == "bigint" and types[c] == "long"}
    as_read |= {c for c in (time_column, rating_column) if c and dtypes[c] == "double"}
    parsed |= {c: F.col(c) for c in as_read}

    reason = F.lit(None).cast("string")
    for failed, why in reversed(checks):
        reason = F.when(failed, F.lit(why)).otherwise(reason)

    others = [c for c in df.columns if c not in parsed]
    # The values as read, kept for the rejected rows (as text) and the duplicate check: under their own
    # name where the column is not parsed (or is its own parse), else as ``_raw_<i>``.
    read = {c: c if c in others or c in as_read else f"_raw_{i}" for i, c in enumerate(df.columns)}
    copies = [F.col(c).alias(name) for c, name in read.items() if name != c]
    typed = df.select(
        *copies, *[expr.alias(c) for c, expr in parsed.items()], *others, reason.alias("reason")
    )
    if duplicates:
        # An exact duplicate repeats every value as read (-0.0 and 0.0 are one value, as in pandas). Rows
        # of one first id (a function of its value as read) ordered by every value: a copy ties with the
        # rows before it, so its row number passes its rank. The rows come out partitioned by the first id.
        kinds = {f.name: f.dataType.typeName() for f in df.schema.fields}
        keys = [_comparable(F.col(name), kinds[c]) for c, name in read.items()]
        same = Window.partitionBy(F.col(id_columns[0])).orderBy(*keys)
        duplicate = F.col("reason").isNull() & (F.row_number().over(same) > F.rank().over(same))
        typed = typed.withColumn(
            "reason", F.when(duplicate, F.lit("duplicate event")).otherwise(F.col("reason"))
        )
    typed = cached(typed)
    accepted = typed.where(F.col("reason").isNull()).select(*df.columns)
    rejected = typed.where(F.col("reason").isNotNull()).select(
        *[F.col(name).cast("string").alias(c) for c, name in read.items()], "reason"
    )
    by_reason, n_accepted, time_warnings = _counts(typed, time_column)
    found = {**id_warnings, **time_warnings}
    n_rejected = sum(by_reason.values())
    result = Validated(
        accepted,
        rejected,
        n_accepted + n_rejected,
        n_accepted,
        n_rejected,
        by_reason,
        warnings={w: n for w, (n, _) in found.items()},
        fixes={w: fix for w, (_, fix) in found.items()},
    )
    log.info("%s: %s", what, result.summary())
    for w, (n, fix) in sorted(found.items()):
        log.warning("%s: %s: %d (%s)", what, w, n, fix)
    return result
