"""Reading and writing tables: Unity Catalog / Hive names, Delta or Parquet paths, CSV/TSV files.

Overwrites are atomic: a failed write leaves the previous table readable. Delta gets that from its
transaction log; Parquet paths are written beside the target and swapped in by rename; Parquet
tables are written under a temporary name and swapped with ``ALTER TABLE ... RENAME``.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_recs.runtime import get_spark, storage_format

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)$")
_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None, ".dat": None}


def is_table_name(source: str) -> bool:
    """True for ``table``, ``schema.table`` or ``catalog.schema.table`` (not a path)."""
    if "/" in source or "\\" in source or Path(source).suffix.lower() in _TEXT_SUFFIXES | {".parquet": None}:
        return False
    parts = _split_name(source)
    return 1 <= len(parts) <= 3 and all(_IDENT.match(p) for p in parts)


def quote_table_name(name: str) -> str:
    """Validate a ``catalog.schema.table`` name and quote each part with backticks."""
    parts = _split_name(name)
    if not 1 <= len(parts) <= 3 or not all(_IDENT.match(p) for p in parts):
        raise ValueError(
            f"invalid table name {name!r}: use table, schema.table or catalog.schema.table with letters, "
            "digits and underscores (quote other characters with backticks)"
        )
    return ".".join(p if p.startswith("`") else f"`{p}`" for p in parts)


def _split_name(name: str) -> list[str]:
    parts = re.findall(r"`[^`]+`|[^.]+", name)
    # findall skips what it cannot match ("a..b", "`a`b"): such names are invalid, not silently repaired.
    return parts if ".".join(parts) == name else []


def _sniff_separator(path: Path) -> str:
    if not path.is_file():
        return ","
    with path.open(errors="replace") as f:  # only the first line: session logs can be gigabytes
        first = f.readline()
    for sep in ("\t", ";", "|", ","):
        if sep in first:
            return sep
    return ","


def read_table(
    spark: SparkSession,
    source: str,
    *,
    format: str | None = None,
    sep: str | None = None,
    header: bool = True,
    encoding: str = "UTF-8",
) -> DataFrame:
    """Read a table name, a Delta/Parquet directory or a CSV/TSV file into a DataFrame.

    Text files are read with every column as a string (validation types them); the separator is
    taken from ``sep``, the suffix (``.csv``, ``.tsv``) or the first line.
    """
    if format is None and is_table_name(source):
        return spark.table(quote_table_name(source))
    path = Path(source)
    fmt = format or _detect_format(path)
    if fmt in ("csv", "text"):
        sep = sep or _TEXT_SUFFIXES.get(path.suffix.lower()) or _sniff_separator(path)
        # escape='"': quotes inside quoted fields are doubled (RFC 4180, MovieLens), not backslashed.
        return spark.read.csv(
            str(source), sep=sep, header=header, inferSchema=False, encoding=encoding, escape='"'
        )
    return spark.read.format(fmt).load(str(source))


def _detect_format(path: Path) -> str:
    if (path / "_delta_log").is_dir():
        return "delta"
    if path.suffix.lower() in _TEXT_SUFFIXES:
        return "csv"
    if path.suffix.lower() == ".parquet" or path.is_dir():
        return "parquet"
    if not path.exists() and "://" not in str(path):
        raise FileNotFoundError(
            f"no table or file at {path}: give an existing path or a catalog.schema.table name"
        )
    return "csv"


def write_table(df: DataFrame, target: str, *, mode: str = "overwrite", format: str | None = None) -> str:
    """Write ``df`` to a table name or path in the session's storage format; returns the format used."""
    spark = df.sparkSession
    fmt = format or storage_format(spark)
    if is_table_name(target):
        _write_named(df, quote_table_name(target), fmt, mode)
    elif mode == "overwrite" and fmt != "delta" and "://" not in target:
        _swap_path(df, Path(target), fmt)
    else:
        df.write.format(fmt).mode(mode).save(target)
    log.info("Wrote %s (%s, %s)", target, fmt, mode)
    return fmt


def _swap_path(df: DataFrame, target: Path, fmt: str) -> None:
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.writing-{uuid.uuid4().hex[:8]}")
    try:
        df.write.format(fmt).mode("overwrite").save(str(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


def _write_named(df: DataFrame, name: str, fmt: str, mode: str) -> None:
    spark = df.sparkSession
    if fmt == "delta" or mode != "overwrite" or not spark.catalog.tableExists(name.replace("`", "")):
        df.write.format(fmt).mode(mode).saveAsTable(name)
        return
    staging = f"{name[:-1]}__writing_{uuid.uuid4().hex[:8]}`"
    retired = f"{name[:-1]}__old_{uuid.uuid4().hex[:8]}`"
    try:
        df.write.format(fmt).mode("overwrite").saveAsTable(staging)
    except BaseException:
        spark.sql(f"DROP TABLE IF EXISTS {staging}")
        raise
    spark.sql(f"ALTER TABLE {name} RENAME TO {_without_catalog(retired)}")
    spark.sql(f"ALTER TABLE {staging} RENAME TO {_without_catalog(name)}")
    spark.sql(f"DROP TABLE IF EXISTS {retired}")


def _without_catalog(name: str) -> str:
    # The session catalog rejects a catalog part in RENAME TO; the table stays in its catalog anyway.
    return ".".join(_split_name(name)[-2:])


def read_databricks_table(name: str, spark: SparkSession | None = None) -> DataFrame:
    """A Unity Catalog / Hive table as a Spark DataFrame (the Spark-native ``load_databricks_table``)."""
    return (spark or get_spark()).table(quote_table_name(name))


def load_databricks_table(name: str, spark: SparkSession | None = None) -> pd.DataFrame:
    """A table as a pandas DataFrame, as in the GRU4Rec README (collects: for tables that fit in memory)."""
    return read_databricks_table(name, spark).toPandas()
