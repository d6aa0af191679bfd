"""The data layer, all in Spark: tables (:mod:`.io`), the one source resolver (:mod:`.sources`), loaders
(:mod:`.movielens`, :mod:`.sessions`), validation (:mod:`.schema`), id indices (:mod:`.index`), splits
(:mod:`.split`) and synthetic data (:mod:`.synthetic`). ``from spark_recs.data import IdIndex`` is
``from spark_recs.data.index import IdIndex``; names are imported on first use (PEP 562).
"""

from __future__ import annotations

from spark_recs.core.exports import lazy_exports

_MODULES = {
    "io": ("read_table", "write_table", "read_databricks_table", "load_databricks_table"),
    "sources": ("read_source", "read_ratings", "read_sessions"),
    "movielens": ("load_ratings", "load_items", "load_users", "load_tags"),
    "sessions": ("load_sessions", "load_diginetica"),
    "schema": ("validate", "Validated", "SchemaError", "RatingColumns", "SessionColumns"),
    "index": ("IdIndex", "UnknownIdError"),
    "split": (
        "preprocess_sessions",
        "time_split",
        "gru4rec_time_split",
        "train_valid_test_split",
        "partition_users",
        "partition_rows",
        "sample_users",
        "SampleN",
        "SampleFrac",
        "temporal_holdout",
        "user_split",
        "SessionSplit",
        "GRU4RecSplit",
        "UserSplit",
    ),
    "synthetic": ("synthetic_sessions", "synthetic_ratings"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
