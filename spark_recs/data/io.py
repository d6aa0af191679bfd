"""Reading and writing tables: Unity Catalog / Hive names, Delta or Parquet paths, CSV/TSV files.

An overwrite never leaves a moment without a complete table, and a failed one keeps the previous table:
- Delta paths and tables: Delta's own overwrite (one commit in the transaction log; time travel keeps
  the old version).
- Parquet paths on local disk: a link to the current version, replaced atomically
  (:mod:`spark_recs.data.versioned`, which says why).
- Parquet tables: the new version goes to a folder of its own, then the table moves to it in one catalog
  operation (``ALTER TABLE ... SET LOCATION``; ``CREATE OR REPLACE TABLE ... LOCATION`` on Spark
  Connect, which is Sail here: Databricks tables are Delta). A classic table whose columns change is
  written under a temporary name and swapped by two renames, with a short window between them: the
  session catalog cannot change a table's columns in place.
- URIs (``s3://``, ``dbfs:/``) and paths on Databricks (object storage has no links): Spark's overwrite.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from spark_recs.data import versioned
from spark_recs.runtime import check_catalog, get_spark, is_connect, on_databricks, storage_format

log = logging.getLogger(__name__)

# A plain part, or a backticked one without what Unity Catalog forbids (period, space, slash, control
# characters) or ';'.
_IDENT = re.compile(r"^(`[^`./;\s\x00-\x1f\x7f]+`|[A-Za-z_][A-Za-z0-9_]*)$")
_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None, ".dat": None}
_PATH_SUFFIXES = {*_TEXT_SUFFIXES, ".parquet", ".gz"}
_SEPARATORS = ("\t", ";", "|", ",")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: c:\data is a Windows path


def is_uri(source: str) -> bool:
    """True for a location with a scheme (``s3://``, ``dbfs:/``, ``models:/``): nothing to look at locally."""
    return bool(_URI.match(source))


def is_table_name(source: str) -> bool:
    """True for ``table``, ``schema.table`` or ``catalog.schema.table`` (not a path)."""
    return not _looks_like_path(source) and _valid_name(source)


def quote_table_name(name: str) -> str:
    """Validate a ``catalog.schema.table`` name and quote each part with backticks."""
    if not _valid_name(name):
        raise ValueError(_invalid_name(name))
    return ".".join(p if p.startswith("`") else f"`{p}`" for p in _split_name(name))


def _valid_name(name: str) -> bool:
    parts = _split_name(name)
    return 1 <= len(parts) <= 3 and all(_IDENT.match(p) for p in parts)


def _invalid_name(name: str) -> str:
    return (
        f"invalid table name {name!r}: use table, schema.table or catalog.schema.table with letters, digits "
        "and underscores (quote other characters with backticks; '.', ' ', '/', ';' and control characters "
        "are not allowed)"
    )


def _split_name(name: str) -> list[str]:
    parts = re.findall(r"`[^`]+`|[^.]+", name)
    # findall skips what it cannot match ("a..b", "`a`b"): such names are invalid, not silently repaired.
    return parts if ".".join(parts) == name else []


def _looks_like_path(source: str) -> bool:
    return "/" in source or "\\" in source or Path(source).suffix.lower() in _PATH_SUFFIXES


def _table_name(source: str) -> str | None:
    """``source`` quoted when it names a table, None for a path; neither (a bad name) is a ValueError."""
    if is_table_name(source):
        return quote_table_name(source)
    if _looks_like_path(source) or os.path.lexists(source):
        return None
    raise ValueError(f"{_invalid_name(source)}; a file or folder path needs a '/' (e.g. ./{source})")


def read_table(
    spark: SparkSession,
    source: str,
    *,
    format: str | None = None,
    sep: str | None = None,
    header: bool = True,
    encoding: str = "UTF-8",
) -> DataFrame:
    """Read a table name, a Delta/Parquet folder, or CSV/TSV files (a file, a folder of them, ``.gz`` too).

    ``format`` applies to paths (a table's is the catalog's). Text is read with every column as a
    string (validation types them) and quoted fields may span lines; the separator is ``sep``, else
    the suffix's (``.csv``, ``.tsv``) when the first line has it, else sniffed from the first line.
    """
    name = _table_name(source)
    if name:
        check_catalog(spark)
        return spark.table(name)
    if is_uri(source):  # object storage: nothing to look at from here
        fmt = format or _uri_format(spark, source)
        sep = sep or _TEXT_SUFFIXES.get(_text_suffix(Path(source)) or "") or ","
        return _load(spark, source, fmt, sep, header, encoding)
    path = versioned.current(Path(source))
    fmt = format or _detect_format(path)
    if fmt in ("csv", "text"):
        sample = _sample_file(path)
        first = _first_line(sample, encoding) if sample else ""
        if not first:
            raise ValueError(f"{source} is empty: a text table needs a header line or rows")
        sep = sep or _separator(first, _text_suffix(sample))
    return _load(spark, str(path), fmt, sep, header, encoding)


def _load(spark: SparkSession, path: str, fmt: str, sep: str, header: bool, encoding: str) -> DataFrame:
    if fmt not in ("csv", "text"):
        return spark.read.format(fmt).load(path)
    # escape='"': quotes inside quoted fields are doubled (RFC 4180, MovieLens), not backslashed.
    # multiLine: quoted fields may hold newlines (classic Spark splits such records otherwise; Sail does not).
    return spark.read.csv(
        path, sep=sep, header=header, inferSchema=False, encoding=encoding, escape='"', multiLine=True
    )


def _uri_format(spark: SparkSession, uri: str) -> str:
    """By the suffix; a folder in object storage cannot be looked into from here: the storage format."""
    if _text_suffix(Path(uri)):
        return "csv"
    return "parquet" if uri.lower().endswith(".parquet") else storage_format(spark)


def _detect_format(path: Path) -> str:
    if (path / "_delta_log").is_dir():
        return "delta"
    if path.is_dir():
        return _folder_format(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no table or file at {path}: give an existing path or a catalog.schema.table name"
        )
    return "parquet" if _file_kind(path) == "parquet" else "csv"


def _folder_format(folder: Path) -> str:
    """``parquet`` or ``csv`` for a folder of data files of one kind; anything else is a ValueError."""
    files = _data_files(folder)
    kinds = {_file_kind(f) for f in files}
    if len(kinds) == 1 and None not in kinds:
        return "parquet" if kinds == {"parquet"} else "csv"
    if not files:
        raise ValueError(f"{folder} is empty: no data files in it")
    names = ", ".join(sorted(str(f.relative_to(folder)) for f in files)[:5])
    holds = f"{len(files)} file{'s' if len(files) > 1 else ''}: {names}{', ...' if len(files) > 5 else ''}"
    found = "Parquet mixed with other files" if "parquet" in kinds else "no Parquet or Delta files"
    raise ValueError(
        f"{folder} holds {holds} ({found}); expected a Delta table, Parquet files, or text files of one kind "
        "(.csv, .tsv or .txt, optionally .gz): give one file's path to read it"
    )


def _data_files(folder: Path) -> list[Path]:
    """The files under ``folder``, skipping hidden and underscore ones (``_SUCCESS``, ``.crc``)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        found += [Path(root, f) for f in sorted(files) if not f.startswith(("_", "."))]
    return found


def _file_kind(path: Path) -> str | None:
    """``parquet``, a text suffix (``.csv``, ``.csv.gz``, ...), or None for another kind of file."""
    suffix = _text_suffix(path)
    if suffix:  # gzip'd and plain files are two kinds: Sail refuses to mix them in one read
        return suffix + (".gz" if path.suffix.lower() == ".gz" else "")
    if path.suffix.lower() == ".parquet":
        return "parquet"
    with path.open("rb") as f:  # Parquet files written by other tools may have no suffix
        return "parquet" if f.read(4) == b"PAR1" else None


def _text_suffix(path: Path) -> str | None:
    """``.csv``, ``.tsv``, ``.txt`` or ``.dat``, looking through a ``.gz`` ending; else None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    return suffixes[-1] if suffixes and suffixes[-1] in _TEXT_SUFFIXES else None


def _sample_file(path: Path) -> Path | None:
    """The file itself, or a folder's first non-empty data file."""
    if path.is_file():
        return path
    return next((f for f in _data_files(path) if f.stat().st_size > 0), None)


def _first_line(path: Path, encoding: str) -> str:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding=encoding, errors="replace") as f:  # one line: logs can be gigabytes
        return f.readline()


def _separator(first_line: str, suffix: str | None) -> str:
    """The suffix's separator when the first line has it, else the first of tab, ';', '|', ',' found there."""
    expected = _TEXT_SUFFIXES.get(suffix or "")
    if expected and expected in first_line:
        return expected
    return next((s for s in _SEPARATORS if s in first_line), expected or ",")


def write_table(df: DataFrame, target: str, *, mode: str = "overwrite", format: str | None = None) -> str:
    """Write ``df`` to a table name or path in the session's storage format; returns the format used.

    An existing Delta folder stays Delta unless ``format`` says otherwise.
    """
    spark = df.sparkSession
    name = _table_name(target)
    local = name is None and not is_uri(target) and not on_databricks()
    delta_folder = local and (versioned.current(Path(target)) / "_delta_log").is_dir()
    if format is None and delta_folder and storage_format(spark) != "delta":
        raise ValueError(
            f"{target} is a Delta table and this session cannot write Delta: set SPARK_RECS_DELTA_JARS "
            "(or use Spark Connect), or pass format='parquet' to replace it"
        )
    fmt = format or ("delta" if delta_folder else storage_format(spark))
    if name:
        check_catalog(spark)
        _write_named(df, name, fmt, mode)
    elif local and mode == "overwrite" and fmt != "delta":
        versioned.overwrite(df, Path(target), fmt)
    else:
        path = str(versioned.current(Path(target))) if local else target  # append into the current version
        df.write.format(fmt).mode(mode).save(path)
    log.info("Wrote %s (%s, %s)", target, fmt, mode)
    return fmt


def _write_named(df: DataFrame, name: str, fmt: str, mode: str) -> None:
    spark = df.sparkSession
    if fmt == "delta" or mode != "overwrite":
        df.write.format(fmt).mode(mode).saveAsTable(name)
        return
    if not spark.catalog.tableExists(name.replace("`", "")):
        folder = None if is_connect(spark) else _schema_folder(spark, name)
        if folder is None:
            df.write.format(fmt).mode(mode).saveAsTable(name)
        else:  # created at a version folder, so that no overwrite ever deletes a folder a reader may be in
            create = f"CREATE TABLE {name} USING {fmt} LOCATION "
            table_folder = folder / _split_name(name)[-1].strip("`")
            versioned.replace(df, table_folder, fmt, lambda v: spark.sql(create + _sql_string(v)))
        return
    location = _table_folder(spark, name)
    if location is None or (not is_connect(spark) and not _same_columns(spark.table(name).schema, df.schema)):
        _replace_by_rename(df, name, fmt)
        return

    def move(version: Path) -> Path | None:
        if is_connect(spark):  # Sail has no ALTER TABLE ... SET LOCATION; it replaces the definition
            spark.sql(f"CREATE OR REPLACE TABLE {name} USING {fmt} LOCATION {_sql_string(version)}")
        else:
            spark.sql(f"ALTER TABLE {name} SET LOCATION {_sql_string(version)}")
        if versioned.base_of(location) == location:
            # A table created elsewhere, at its own folder: that folder goes now (left behind, it would
            # block creating the table again after a DROP TABLE). Versions are hidden siblings, which
            # the next overwrite prunes.
            shutil.rmtree(location, ignore_errors=True)
            return None
        return location

    versioned.replace(df, versioned.base_of(location), fmt, move)


def _schema_folder(spark: SparkSession, name: str) -> Path | None:
    """The local folder of the schema ``name`` is in, or None (object storage, or not visible from here)."""
    schema = ".".join(p.strip("`") for p in _split_name(name)[:-1]) or spark.catalog.currentDatabase()
    location = (spark.catalog.getDatabase(schema).locationUri or "").removeprefix("file:")
    return Path(location) if location and not is_uri(location) and Path(location).is_dir() else None


def _table_folder(spark: SparkSession, name: str) -> Path | None:
    """The local folder a table's files are in, or None (object storage, or not visible from here)."""
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    location = next((row[1] for row in rows if row[0] == "Location"), "") or ""
    location = location.removeprefix("file:")
    if not location or is_uri(location) or not Path(location).is_dir():
        return None
    return Path(os.path.abspath(location))


def _same_columns(a: StructType, b: StructType) -> bool:
    return [(f.name, f.dataType) for f in a.fields] == [(f.name, f.dataType) for f in b.fields]


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _replace_by_rename(df: DataFrame, name: str, fmt: str) -> None:
    spark = df.sparkSession
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
    name, spark = quote_table_name(name), spark or get_spark()
    check_catalog(spark)
    return spark.table(name)


def collect_columns(df: DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``df`` collected to the driver as pandas, through Arrow, each Arrow buffer freed as
    soon as it is converted: about two thirds of the peak memory of ``toPandas()``."""
    return df.select(*columns).toArrow().to_pandas(self_destruct=True, split_blocks=True)


def load_databricks_table(name: str, spark: SparkSession | None = None) -> pd.DataFrame:
    """A table as a pandas DataFrame, as in the GRU4Rec README (collects: for tables that fit in memory)."""
    return read_databricks_table(name, spark).toPandas()
