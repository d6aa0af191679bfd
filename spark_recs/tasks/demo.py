"""The demo job (``kind: demo``): the main job end to end on one model (Popular): load, validate, index,
split, train, batch-recommend, evaluate, track."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_recs.batch import recommend_sessions
from spark_recs.core.params import (
    NON_NEGATIVE,
    POSITIVE_INT,
    ConfigError,
    Rule,
    check_params,
    declarations,
    param,
)
from spark_recs.data.index import IdIndex
from spark_recs.data.io import write_table
from spark_recs.data.schema import SchemaError
from spark_recs.data.sources import read_ratings, read_sessions, synthetic_log
from spark_recs.data.split import preprocess_sessions, time_split
from spark_recs.evaluation.metrics import next_item_metrics, next_item_targets
from spark_recs.models.popular import Popular
from spark_recs.progress import Steps
from spark_recs.runtime import cached, default_tracking_uri, work_dir
from spark_recs.tracking import mlflow_key, tracked_run

from .base import Section, session_settings

_TEXT = Rule(str)
_OPTIONAL_TEXT = Rule(str, nullable=True)
_SOURCE = Rule(str, nullable=True, source=True)


@dataclass
class DemoConfig:
    """What the demo runs on; every field has a working default (synthetic sessions). The declaration of
    the demo's parameters: the ``kind: demo`` config schema and the CLI help are derived from it.

    With ``ratings`` (a MovieLens folder or a ``user, item, rating, timestamp`` file or table) each
    user's ratings in time order play the part of a session.
    """

    #: Where a field sits in a ``kind: demo`` config file; the others are ``data.<field>``.
    CONFIG_KEYS: ClassVar[dict[str, str]] = {
        "cutoffs": "evaluation.cutoff",
        "n": "evaluation.n",
        "experiment": "mlflow.experiment",
        "tracking_uri": "mlflow.tracking_uri",
        "output": "paths.output",
    }

    sessions: str | None = param(
        None, _SOURCE, "session log (SessionId, ItemId, Time; file, path or table; unset: synthetic)"
    )
    ratings: str | None = param(
        None,
        _SOURCE,
        "ratings instead (MovieLens folder, or user,item,rating,timestamp file/table); users act as sessions",
    )
    session_key: str = param("SessionId", _TEXT, "session column of the session log")
    item_key: str = param("ItemId", _TEXT, "item column of the session log")
    time_key: str = param("Time", _TEXT, "time column of the session log")
    sep: str | None = param(
        None, _OPTIONAL_TEXT, "separator of a CSV/TSV file (unset: from the suffix or the header line)"
    )
    n_events: int = param(200_000, POSITIVE_INT, "synthetic events")
    n_items: int = param(2_000, Rule(int, 2), "synthetic items")
    seed: int = param(0, Rule(int, 0), "seed of the synthetic data")
    test_days: float = param(1.0, NON_NEGATIVE, "test = sessions ending in the last N days")
    cutoffs: list[int] = param([20], Rule(list, items=POSITIVE_INT), "cutoffs of Recall/MRR, each <= n")
    n: int = param(20, POSITIVE_INT, "recommendations after every test event")
    experiment: str = param("spark_recs-demo", _TEXT, "MLflow experiment of the run")
    tracking_uri: str | None = param(None, _OPTIONAL_TEXT, "MLflow tracking URI (unset: the default store)")
    output: str | None = param(
        None, _OPTIONAL_TEXT, "folder for the recommendations and rejected rows (unset: .spark_recs/demo)"
    )

    def __post_init__(self) -> None:
        check_params(self, {name: getattr(self, name) for name in declarations(self)})

    @classmethod
    def config_key(cls, name: str) -> tuple[str, str]:
        """``(section, key)`` of field ``name`` in a ``kind: demo`` config (``CONFIG_KEYS``, else ``data``)."""
        section, _, key = cls.CONFIG_KEYS.get(name, f"data.{name}").partition(".")
        return section, key

    @classmethod
    def from_config(cls, config: dict) -> DemoConfig:
        """The fields of a loaded ``kind: demo`` config."""
        values = {}
        for name in declarations(cls):
            section, key = cls.config_key(name)
            values[name] = config[section][key]
        return cls(**values | {"test_days": float(values["test_days"])})


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` measured and wrote: Recall/MRR at the cutoffs (and ``n_targets``), row
    counts, the MLflow run, and the folder and format of the recommendations and rejected rows."""

    metrics: dict[str, float]
    counts: dict[str, int]
    run_id: str
    tracking_uri: str
    output: str
    format: str


def schema() -> dict[str, Section]:
    """The ``kind: demo`` schema: each field of :class:`DemoConfig` at its ``CONFIG_KEYS`` key."""
    sections: dict[str, Section] = {"data": {}, "evaluation": {}, "mlflow": {}, "paths": {}}
    for name, p in declarations(DemoConfig).items():
        section, key = DemoConfig.config_key(name)
        sections[section][key] = (p.default, p.rule)
    return sections


def run_demo(spark: SparkSession, config: DemoConfig | None = None) -> DemoResult:
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

    data = {"input": source, "output": out}
    with tracked_run(
        cfg.experiment, "demo-popular", tracking_uri=cfg.tracking_uri, spark=spark, data=data
    ) as run:
        with steps.step(f"Load and validate {source}", "load"):
            if cfg.sessions:
                checked = read_sessions(spark, cfg.sessions, "sessions", **keys, sep=cfg.sep)
            elif cfg.ratings:
                checked = read_ratings(spark, cfg.ratings, "ratings", sep=cfg.sep)
            else:
                checked = synthetic_log(spark, cfg.n_events, cfg.n_items, seed=cfg.seed, **keys)
            print(f"    {checked.summary()}")
        with steps.step(
            f"Preprocess and split (test = sessions ending in the last {cfg.test_days:g} day(s))", "split"
        ):
            kept = preprocess_sessions(checked.accepted, **keys).cache()
            split = time_split(kept.kept, cfg.test_days, **keys).cache()
            counts = split.counts() | {f"preprocess:{k}": v for k, v in kept.counts().items() if k != "kept"}
            print(f"    train {counts['train']:,} events, test {counts['test']:,} events")
        with steps.step("Index items", "index"):
            items, train = IdIndex.fit_transform(split.train, cfg.item_key, unknown="drop")
            test = cached(items.transform(split.test))
            print(f"    {items.size:,} items")
        with steps.step("Train Popular", "train"):
            model = Popular().fit(
                train.select(F.col(cfg.session_key).alias("user"), F.col(cfg.item_key).alias("item"))
            )
        with steps.step(f"Recommend the top {cfg.n} after every test event (pandas UDF)", "recommend"):
            recs = recommend_sessions(model, test, cfg.n, every_prefix=True, **keys)
            fmt = write_table(items.inverse_transform(recs, "item"), str(out / "recommendations"))
            recs = spark.read.format(fmt).load(str(out / "recommendations"))
        with steps.step(f"Evaluate Recall/MRR@{cfg.cutoffs}", "evaluate"):
            targets = items.inverse_transform(next_item_targets(test, **keys), "target")
            metrics = next_item_metrics(recs, targets, cfg.cutoffs, session_key=cfg.session_key)
            write_table(checked.rejected, str(out / "rejected"))
        with steps.step("Log to MLflow", "log"):
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
    counts |= {"rows_in": checked.rows_in, "rejected": checked.n_rejected}
    return DemoResult(metrics, counts, run_id, tracking, str(out), fmt)


def demo(spark: SparkSession, config: dict) -> DemoResult:
    """Run the demo job (:func:`run_demo`) with a ``kind: demo`` config; no next-item target to score is
    an error."""
    data, evaluation = config["data"], config["evaluation"]
    if max(evaluation["cutoff"]) > evaluation["n"]:
        raise ConfigError(
            f"evaluation.cutoff {evaluation['cutoff']} exceeds evaluation.n = {evaluation['n']}: "
            "raise evaluation.n or lower the cutoffs"
        )
    if data["sessions"] and data["ratings"]:
        raise ConfigError("give data.sessions or data.ratings, not both")
    try:
        result = run_demo(spark, DemoConfig.from_config(config))
    except SchemaError as exc:
        if not data["sessions"]:
            raise
        looks_like_ratings = {"user", "item"} <= set(exc.found)
        hint = (
            f"it looks like ratings: pass it as data.ratings={data['sessions']}",
            f"it looks like ratings: run `spark-recs demo --ratings {data['sessions']}`",
        )
        raise exc.fixed_by(session_settings(data), hint if looks_like_ratings else None) from None
    if not result.metrics["n_targets"]:
        raise ValueError(
            f"the demo found no next-item target to score: the test sessions (those ending in the last "
            f"{data['test_days']:g} days) are empty or hold no item seen in training; raise data.test_days "
            "(--test-days) or give more data"
        )
    return result
