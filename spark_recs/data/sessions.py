"""Session-log loaders: ``SessionId, ItemId, Time`` files (tab or comma separated) and raw DIGINETICA views."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_recs.data.io import read_table
from spark_recs.data.schema import SessionColumns, Validated, date_time_seconds, validate


def load_sessions(
    spark: SparkSession,
    source: str | Path,
    *,
    sep: str | None = None,
    id_type: str | dict[str, str] = "auto",
    **keys: str,
) -> Validated:
    """Load and validate a session log (file, path or table) with the column names ``keys``
    (:class:`~spark_recs.data.schema.SessionColumns`).

    ``Time`` may be epoch seconds or a timestamp string; it comes back as epoch seconds.
    """
    c = SessionColumns(**keys)
    raw = read_table(spark, str(source), sep=sep)
    return validate(raw, c.ids, c.time_key, id_type=id_type, what=f"session log {Path(str(source)).name}")


def load_diginetica(spark: SparkSession, path: str | Path) -> Validated:
    """Raw DIGINETICA ``train-item-views.csv`` as a session log.

    Time = the session date (epoch seconds) + ``timeframe`` (ms since session start) / 1000; a row
    whose ``eventdate`` is not a full date or whose ``timeframe`` is not a number is rejected as
    ``unparseable Time``.
    """
    raw = read_table(spark, str(path), sep=";")
    cols = {c.lower(): c for c in raw.columns}
    session, item = cols.get("session_id", cols.get("sessionid")), cols.get("item_id", cols.get("itemid"))
    day = date_time_seconds(F.col(cols["eventdate"]))
    log = raw.select(
        F.col(session).alias("SessionId"),
        F.col(item).alias("ItemId"),
        (day + F.col(cols["timeframe"]).try_cast("double") / 1000).alias("Time"),
    )
    return validate(log, ["SessionId", "ItemId"], "Time", what=f"DIGINETICA views {Path(path).name}")
