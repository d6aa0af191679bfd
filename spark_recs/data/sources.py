"""The one resolver of ratings and session logs: every job, environment and loader reads its data here.

A source is a string, resolved by one rule per format, in this order:

- a table name (``table``, ``schema.table``, ``catalog.schema.table``; no ``/``): the metastore or Unity
  Catalog table;
- a URI (``s3://``, ``dbfs:/``): left to Spark (nothing local to look at);
- a MovieLens folder (any layout :func:`~spark_recs.data.movielens.movielens_layout` knows: ml-100k,
  latest-small, 1M, 10M, 20M): its ratings through :func:`~spark_recs.data.movielens.load_ratings`;
- any other path: a Delta or Parquet folder, or CSV/TSV files (:func:`~spark_recs.data.io.read_table`).

The embedded synthetic sessions are :func:`synthetic_log`. A missing local path is an error before
Spark starts (:func:`check_source`), a missing table once a session can look it up
(:func:`require_source`); both name the source and the fix in one line.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_recs.data.io import is_table_name, is_uri, read_table
from spark_recs.data.movielens import load_ratings, movielens_layout
from spark_recs.data.schema import (
    RatingColumns,
    SchemaError,
    SessionColumns,
    Validated,
    require_columns,
    validate,
)
from spark_recs.data.sessions import load_sessions
from spark_recs.data.synthetic import synthetic_sessions

RATINGS = RatingColumns()


def check_source(source: str, what: str) -> None:
    """Raise ``FileNotFoundError`` naming ``source`` and the fix when it is a local path that does not exist
    (needs no Spark: the CLI checks its arguments before starting a session)."""
    if not is_table_name(source) and not is_uri(source) and not Path(source).exists():
        raise FileNotFoundError(
            f"{what}: {source} does not exist; pass an existing file or folder, or a catalog.schema.table name"
        )


def require_source(spark: SparkSession, source: str, what: str) -> None:
    """Raise ``FileNotFoundError`` naming ``source`` and the fix when no table or path of that name exists."""
    check_source(source, what)
    if is_table_name(source):
        try:
            found, why = spark.catalog.tableExists(source.replace("`", "")), ""
        except AnalysisException as exc:  # e.g. a catalog.schema.table name on a session without that catalog
            found, why = False, f" ({str(exc).strip().splitlines()[0]})"
        if not found:
            raise FileNotFoundError(
                f"{what}: table {source} not found{why}; create it, or pass a file or folder path "
                "(a path needs a '/', e.g. ./clicks.tsv)"
            )


def is_movielens(source: str) -> bool:
    """Whether ``source`` is a local MovieLens folder (a table name or URI never is)."""
    if is_table_name(source) or is_uri(source):
        return False
    try:
        movielens_layout(source)
    except FileNotFoundError:
        return False
    return True


def read_source(spark: SparkSession, source: str, what: str, sep: str | None = None) -> DataFrame:
    """A table, Delta/Parquet path or CSV/TSV file (``sep``: its separator) as it is; a MovieLens folder as
    its validated ``user, item, rating, timestamp`` ratings."""
    require_source(spark, source, what)
    if is_movielens(source):
        return load_ratings(spark, source).accepted
    return read_table(spark, source, sep=sep)


def read_ratings(
    spark: SparkSession,
    source: str,
    what: str = "ratings",
    *,
    columns: RatingColumns = RATINGS,
    sep: str | None = None,
    settings: dict[str, str] | None = None,
    file: str | None = None,
) -> Validated:
    """Validated ratings ``user, item, rating, timestamp`` (rating and timestamp when ``columns`` names
    them) from any source.

    A MovieLens folder goes through its loader (``file``: one of its files in its layout, e.g.
    ``u1.base``); another source's columns are the ones ``columns`` names, renamed. ``what`` names the
    source in a not-found error (e.g. ``data.ratings``); ``settings`` maps a column to the config key or
    option that names it, for the fix of a missing column.
    """
    require_source(spark, source, what)
    if is_movielens(source):
        return load_ratings(spark, source, file=file)
    if file:
        raise ValueError(f"{what}: file={file!r} needs a MovieLens folder, and {source} is not one")
    pairs = [(getattr(columns, c), c) for c in ("user", "item", "rating", "timestamp") if getattr(columns, c)]
    raw = read_table(spark, source, sep=sep)
    require_columns(raw, [name for name, _ in pairs], f"ratings {source}", settings)
    renamed = raw.select(*[F.col(name).alias(c) for name, c in pairs])
    time, rating = ("timestamp" if columns.timestamp else None), ("rating" if columns.rating else None)
    return validate(renamed, RATINGS.ids, time, rating, what=f"ratings {source}")


def read_sessions(
    spark: SparkSession,
    source: str,
    what: str = "sessions",
    *,
    sep: str | None = None,
    id_type: str | dict[str, str] = "auto",
    settings: dict[str, str] | None = None,
    **keys: str,
) -> Validated:
    """A validated session log (:func:`~spark_recs.data.sessions.load_sessions`, which takes ``keys``) from
    a table, path or file.

    ``what`` names the source in a not-found error; ``settings`` maps a column to the config key or option
    that names it, for the fix of a missing column.
    """
    require_source(spark, source, what)
    try:
        return load_sessions(spark, source, sep=sep, id_type=id_type, **keys)
    except SchemaError as exc:
        raise exc.fixed_by(settings or {}) from None


def synthetic_log(
    spark: SparkSession, n_events: int, n_items: int, *, seed: int = 0, **keys: str
) -> Validated:
    """The embedded synthetic session log (:func:`~spark_recs.data.synthetic.synthetic_sessions`) under the
    column names ``keys`` (:class:`~spark_recs.data.schema.SessionColumns`), validated like a read one."""
    c = SessionColumns(**keys)
    raw = synthetic_sessions(spark, n_events, n_items, seed=seed, **keys)
    return validate(raw, c.ids, c.time_key, what="synthetic sessions")
