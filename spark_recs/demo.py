"""The main job end to end: load, validate, index, split, train, batch-recommend, evaluate, track."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_recs.batch import recommend_sessions
from spark_recs.data.index import IdIndex
from spark_recs.data.io import read_table, write_table
from spark_recs.data.movielens import load_ratings
from spark_recs.data.schema import Validated, validate
from spark_recs.data.sessions import load_sessions
from spark_recs.data.split import preprocess_sessions, time_split
from spark_recs.data.synthetic import synthetic_sessions
from spark_recs.evaluation.metrics import next_item_metrics, next_item_targets
from spark_recs.models.popular import Popular
from spark_recs.progress import Steps
from spark_recs.runtime import cached, default_tracking_uri, work_dir
from spark_recs.tracking import mlflow_key, tracked_run

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """What the demo runs on; every field has a working default (synthetic sessions).

    With ``ratings`` (a MovieLens folder or a ``user, item, rating, timestamp`` file or table) each
    user's ratings in time order play the part of a session.
    """

    sessions: str | None = None
    ratings: str | None = None
    session_key: str = "SessionId"
    item_key: str = "ItemId"
    time_key: str = "Time"
    sep: str | None = None
    n_events: int = 200_000
    n_items: int = 2_000
    seed: int = 0
    test_days: float = 1.0
    cutoffs: list[int] = field(default_factory=lambda: [20])
    n: int = 20
    experiment: str = "spark_recs-demo"
    tracking_uri: str | None = None
    output: str | None = None


def run_demo(spark: SparkSession, config: DemoConfig | None = None) -> dict:
    """Run the demo job; returns the metrics, row counts and where everything was written."""
    cfg = config or DemoConfig()
    if cfg.ratings:
        cfg = replace(cfg, session_key="user", item_key="item", time_key="timestamp")
    keys = {"session_key": cfg.session_key, "item_key": cfg.item_key, "time_key": cfg.time_key}
    out = Path(cfg.output) if cfg.output else work_dir() / "demo"
    steps = Steps(7)
    source = (
        cfg.sessions
        or cfg.ratings
        or f"synthetic(n_events={cfg.n_events}, n_items={cfg.n_items}, seed={cfg.seed})"
    )

    with steps.step(f"Load and validate {source}"):
        if cfg.sessions:
            checked = load_sessions(spark, cfg.sessions, **keys, sep=cfg.sep)
        elif cfg.ratings:
            checked = _load_ratings(spark, cfg.ratings, cfg.sep)
        else:
            raw = synthetic_sessions(spark, cfg.n_events, cfg.n_items, seed=cfg.seed)
            checked = validate(raw, [cfg.session_key, cfg.item_key], cfg.time_key, what="synthetic sessions")
        print(f"    {checked.summary()}")
    with steps.step(f"Preprocess and split (test = sessions ending in the last {cfg.test_days:g} day(s))"):
        kept = preprocess_sessions(checked.accepted, **keys).cache()
        split = time_split(kept.kept, cfg.test_days, **keys).cache()
        counts = split.counts() | {f"preprocess:{k}": v for k, v in kept.counts().items() if k != "kept"}
        print(f"    train {counts['train']:,} events, test {counts['test']:,} events")
    with steps.step("Index items"):
        items = IdIndex.fit(split.train, cfg.item_key, unknown="drop")
        train = items.transform(split.train)
        test = cached(items.transform(split.test))
        print(f"    {items.size:,} items")
    with steps.step("Train Popular"):
        start = time.perf_counter()
        model = Popular().fit(
            train.select(F.col(cfg.session_key).alias("user"), F.col(cfg.item_key).alias("item"))
        )
        train_time = time.perf_counter() - start
    with steps.step(f"Recommend the top {cfg.n} after every test event (pandas UDF)"):
        start = time.perf_counter()
        recs = recommend_sessions(model, test, cfg.n, every_prefix=True, **keys)
        fmt = write_table(items.inverse_transform(recs, "item"), str(out / "recommendations"))
        recs = spark.read.format(fmt).load(str(out / "recommendations"))
        rec_time = time.perf_counter() - start
    with steps.step(f"Evaluate Recall/MRR@{cfg.cutoffs}"):
        targets = items.inverse_transform(next_item_targets(test, **keys), "target")
        metrics = next_item_metrics(recs, targets, cfg.cutoffs, session_key=cfg.session_key)
        write_table(checked.rejected, str(out / "rejected"))
    with steps.step("Log to MLflow"):
        with tracked_run(cfg.experiment, "demo-popular", tracking_uri=cfg.tracking_uri) as run:
            mlflow.log_params(
                {"data": source, "model": "Popular", "n": cfg.n, "seed": cfg.seed, "test_days": cfg.test_days}
            )
            mlflow.log_metrics({mlflow_key(k): v for k, v in metrics.items()})
            mlflow.log_metrics(
                {
                    "rows_in": checked.rows_in,
                    "rows_accepted": checked.n_accepted,
                    "rows_rejected": checked.n_rejected,
                    "n_items": items.size,
                    "train_seconds": train_time,
                    "recommend_seconds": rec_time,
                }
                | {k.replace(":", "_"): v for k, v in counts.items()}
            )
            mlflow.set_tags(
                {
                    "recommendations": str(out / "recommendations"),
                    "rejected": str(out / "rejected"),
                    "format": fmt,
                }
            )
            run_id = run.info.run_id
    tracking = cfg.tracking_uri or default_tracking_uri()
    return {
        "metrics": metrics,
        "counts": counts | {"rows_in": checked.rows_in, "rejected": checked.n_rejected},
        "run_id": run_id,
        "tracking_uri": tracking,
        "output": str(out),
        "format": fmt,
    }


def _load_ratings(spark: SparkSession, source: str, sep: str | None) -> Validated:
    if Path(source).is_dir() and not (Path(source) / "_delta_log").exists():
        return load_ratings(spark, source)
    raw = read_table(spark, source, sep=sep)
    return validate(raw, ["user", "item"], "timestamp", "rating", what=f"ratings {source}")
