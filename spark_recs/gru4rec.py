"""GRU4Rec as its README uses it: ``from spark_recs.gru4rec import GRU4Rec, load_config, split_data,
build_model, evaluate`` (the official package's ``from gru4rec import ...``).

The helpers take pandas DataFrames as in the README (e.g. from ``load_databricks_table``) or Spark
DataFrames; the split itself always runs in Spark (:func:`spark_recs.data.split.train_valid_test_split`).
The Spark job built on the same config is :mod:`spark_recs.tasks.gru4rec`.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame

from spark_recs.config import load_config
from spark_recs.data.split import train_valid_test_split as _spark_split
from spark_recs.evaluation.sessions import batch_eval
from spark_recs.models.gru4rec.model import GRU4Rec
from spark_recs.tasks.gru4rec import build_model

__all__ = ["GRU4Rec", "load_config", "split_data", "train_valid_test_split", "build_model", "evaluate"]


def train_valid_test_split(
    df: pd.DataFrame | DataFrame,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    *,
    session_key: str = "SessionId",
    item_key: str = "ItemId",
    time_key: str = "Time",
):
    """Whole sessions split by time into ``(train, valid, test)``, returned as the input's kind of frame."""
    keys = {"session_key": session_key, "item_key": item_key, "time_key": time_key}
    if isinstance(df, pd.DataFrame):
        from spark_recs.runtime import get_spark

        parts = _spark_split(get_spark().createDataFrame(df), valid_fraction, test_fraction, **keys)
        return tuple(part.toPandas() for part in parts)
    return _spark_split(df, valid_fraction, test_fraction, **keys)


def split_data(df: pd.DataFrame | DataFrame, config: dict):
    """``(train, valid, test)`` with the config's ``data_split`` fractions and ``data`` column names."""
    return train_valid_test_split(df, **config["data_split"], **config["data"])


def evaluate(gru: GRU4Rec, test: pd.DataFrame, config: dict) -> tuple[dict, dict]:
    """``(recall, mrr)`` keyed by cutoff, with the config's ``evaluation`` settings and column names."""
    return batch_eval(gru, test, **config["evaluation"], **config["data"])
