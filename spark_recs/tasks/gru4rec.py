"""The GRU4Rec job: ``prepare`` a session log, ``train`` GRU4Rec on it, ``evaluate`` a session model,
``tune`` its parameters.

Its config follows GRU4Rec's ``example.yaml``: ``model`` (every constructor parameter, declared by
:class:`~spark_recs.models.gru4rec.params.GRU4RecParams`), ``data`` (column names), ``data_split``,
``training``, ``evaluation`` and ``paths``, plus ``tune`` and ``search_space`` for a search. Data
locations are arguments, not config keys: a CSV/TSV file, a Delta/Parquet path or a
``catalog.schema.table``; ``prepare`` writes ``sessions_<part>`` under a folder or a ``catalog.schema``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_recs.core.params import FRACTION, POSITIVE_INT, ConfigError, Rule
from spark_recs.data.io import collect_columns, is_table_name, read_table, write_table
from spark_recs.data.schema import SessionColumns
from spark_recs.data.sources import check_source, read_sessions, require_source
from spark_recs.progress import Steps

from .base import (
    Section,
    Trained,
    mlflow_section,
    mlflow_settings,
    note,
    promote_with,
    promotion_section,
    section,
    session_settings,
)
from .tuning import Tuned, log_test_metrics, search_copies, settings_of, without_search

#: What ``prepare`` writes: ``sessions_<part>`` under the output folder or schema.
PREPARED_PARTS = ("train", "valid", "test", "rejected")
DEFAULT_EXPERIMENT = "spark_recs-gru4rec"
DEFAULT_MODEL_NAME = "spark_recs-gru4rec"
#: Where :func:`train` logs and registers when the command line says nothing (the config has no ``mlflow``).
MLFLOW_DEFAULTS = {
    "mlflow": {k: v[0] for k, v in mlflow_section(DEFAULT_EXPERIMENT, DEFAULT_MODEL_NAME).items()}
}

#: The sections of a GRU4Rec config besides ``model``.
SECTIONS: dict[str, Section] = {
    "data": {
        "session_key": ("SessionId", Rule(str)),
        "item_key": ("ItemId", Rule(str)),
        "time_key": ("Time", Rule(str)),
    },
    "data_split": {"valid_fraction": (0.1, FRACTION), "test_fraction": (0.1, FRACTION)},
    "training": {
        "sample_cache_max_size": (10_000_000, Rule(int, 0)),
        "compatibility_mode": (True, Rule(bool)),
    },
    "evaluation": {
        "cutoff": ([20], Rule(list, items=POSITIVE_INT)),
        "batch_size": (512, POSITIVE_INT),
        "mode": ("conservative", Rule(str, choices=("conservative", "standard", "median"))),
    },
    "paths": {
        "model_save": ("model.pth", Rule(str, nullable=True)),
        "model_load": (None, Rule(str, nullable=True, source=True)),
    },
    # The champion/challenger gate of `promote` (spark_recs.serving.promotion).
    "promotion": promotion_section("recall@20"),
}


def schema() -> dict[str, Section | Callable]:
    """The ``kind: gru4rec`` schema: GRU4Rec's declared parameters as ``model``, then :data:`SECTIONS`,
    then what ``tune`` reads: its settings (``tune``) and the dimensions to search (``search_space``)."""
    from spark_recs.models.gru4rec.params import GRU4RecParams
    from spark_recs.tuning.search import SearchParams

    return {
        "model": section(GRU4RecParams),
        **SECTIONS,
        "tune": section(SearchParams),
        "search_space": lambda spec: searched_space(spec, None),
    }


# ---- prepared sessions ------------------------------------------------------------------------------


def prepared_location(location: str, part: str) -> str:
    """Where :func:`prepare` writes ``part``: table ``<location>.sessions_<part>`` for a schema name
    (``catalog.schema``), else the folder ``<location>/sessions_<part>``."""
    if part not in PREPARED_PARTS:
        raise ValueError(f"unknown prepared part {part!r}; expected one of {PREPARED_PARTS}")
    name = f"sessions_{part}"
    return f"{location}.{name}" if is_table_name(location) else str(Path(location) / name)


def check_prepared(location: str | None, part: str, spark: SparkSession | None = None) -> None:
    """Raise ``FileNotFoundError`` with the fix when :func:`prepare` wrote no ``part`` at ``location`` (a
    table is looked up only with ``spark``; a folder needs no Spark)."""
    if not location:
        raise ValueError(
            "the prepared sessions are needed: pass --input, the location `spark-recs prepare --output` "
            "wrote (a folder or catalog.schema)"
        )
    target = prepared_location(location, part)
    try:
        if spark is None:
            check_source(target, "")
        else:
            require_source(spark, target, "")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no prepared {part} sessions at {target}: run `spark-recs prepare --output {location}` first, "
            "or pass the --input that prepare wrote to"
        ) from None


def read_prepared(spark: SparkSession, location: str, part: str) -> DataFrame:
    """One part of what :func:`prepare` wrote at ``location``."""
    check_prepared(location, part, spark)
    return read_table(spark, prepared_location(location, part))


# ---- prepare ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` wrote: the location, the tables and the row counts."""

    location: str
    tables: dict[str, str]
    counts: dict[str, int]

    def summary(self) -> str:
        c = self.counts
        return (
            f"rows in {c['rows_in']:,} = accepted {c['accepted']:,} + rejected {c['rejected']:,}; "
            f"sessions split into train {c['train']:,}, valid {c['valid']:,}, test {c['test']:,} events"
        )


def prepare(
    spark: SparkSession, config: dict, source: str, output: str, *, sep: str | None = None
) -> Prepared:
    """Load and validate a session log, split whole sessions by time with the config's ``data_split``
    fractions, and write ``sessions_train/valid/test`` plus ``sessions_rejected`` (every rejected row with
    its ``reason``) under ``output`` (a folder, or a ``catalog.schema``). ``sep``: the separator of a
    CSV/TSV ``source`` (default: from the suffix or the header line)."""
    from spark_recs.data.split import train_valid_test_split

    keys, split = config["data"], config["data_split"]
    steps = Steps(3)
    with steps.step(f"Load and validate {source}"):
        checked = read_sessions(spark, source, "sessions", **keys, sep=sep, settings=session_settings(keys))
        note(checked.summary())
        if checked.n_accepted == 0:
            raise ValueError(
                f"{source}: no usable rows ({checked.summary()}); fix the rows or the column mapping "
                "(data.session_key/item_key/time_key)"
            )
    with steps.step(
        f"Split sessions by time (valid {split['valid_fraction']:g}, test {split['test_fraction']:g})"
    ):
        parts = dict(
            zip(("train", "valid", "test"), train_valid_test_split(checked.accepted, **split, **keys))
        )
    tables = {part: prepared_location(output, part) for part in PREPARED_PARTS}
    counts = {"rows_in": checked.rows_in, "accepted": checked.n_accepted, "rejected": checked.n_rejected}
    with steps.step(f"Write sessions_{{{','.join(PREPARED_PARTS)}}} to {output}"):
        for part, frame in [*parts.items(), ("rejected", checked.rejected)]:
            write_table(frame, tables[part])
            if part != "rejected":
                counts[part] = read_table(spark, tables[part]).count()
    if not counts["train"]:
        raise ValueError(
            f"{source}: the split left no train sessions (valid {counts['valid']:,}, test {counts['test']:,} "
            "events); lower data_split.valid_fraction/test_fraction"
        )
    return Prepared(output, tables, counts)


# ---- train --------------------------------------------------------------------------------------------


def build_model(config: dict):
    """A GRU4Rec from the config's ``model`` section; loaded from ``paths.model_load`` when that is set."""
    from spark_recs.models.gru4rec import GRU4Rec

    model_load = config.get("paths", {}).get("model_load")
    if model_load:
        return GRU4Rec.load(model_load, device=config["model"].get("device"))
    return GRU4Rec(**config["model"])


def train(
    spark: SparkSession,
    config: dict,
    prepared: str | None = None,
    *,
    experiment: str | None = None,
    register_as: str | None = None,
    alias: str | None = None,
    tracking_uri: str | None = None,
    include_valid: bool = False,
) -> Trained:
    """GRU4Rec on the ``prepared`` train sessions, validated on the valid sessions after every epoch,
    tracked in MLflow: params, per-epoch training loss and validation Recall/MRR at the evaluation cutoffs
    are logged, the model is saved to ``paths.model_save`` (when set), logged, and registered as
    ``register_as`` (default ``spark_recs-gru4rec``; ``catalog.schema.model`` on Databricks; ``""``: not
    registered) with ``alias`` (default ``challenger``), in ``experiment`` (default ``spark_recs-gru4rec``).
    ``include_valid``: train on the train and valid sessions together (the final fit after a search),
    with nothing left to validate on.
    """
    import mlflow

    from spark_recs.serving.registry import log_and_register
    from spark_recs.tracking import log_params_flat, tracked_run

    tracking = mlflow_settings(MLFLOW_DEFAULTS, experiment, register_as, alias)
    keys, model_cfg = config["data"], config["model"]
    steps = Steps(3)
    fit_on = "train+valid" if include_valid else "train"
    data = {"input": prepared, "model_save": config["paths"]["model_save"]}
    run_name = "train-gru4rec"
    with tracked_run(
        tracking["experiment"], run_name, tracking_uri=tracking_uri, spark=spark, data=data
    ) as run:
        for name in ("model", "data", "data_split", "training", "evaluation"):
            log_params_flat(config[name], f"{name}.")
        mlflow.set_tags({"input": prepared, "kind": "gru4rec", "fit_on": fit_on})
        with steps.step(f"Load prepared sessions from {prepared}", "load"):
            columns = SessionColumns(**keys).names  # only what the model reads
            train_df = collect_columns(read_prepared(spark, prepared, "train"), columns)
            valid_df = collect_columns(read_prepared(spark, prepared, "valid"), columns)
            if include_valid:  # concatenated here: a union's row order differs between engines
                train_df, valid_df = pd.concat([train_df, valid_df], ignore_index=True), valid_df.iloc[:0]
            note(f"{fit_on} {len(train_df):,} events, valid {len(valid_df):,} events")
        valid = valid_df if len(valid_df) else None
        gru = build_model(config)
        callback = _epoch_logger(valid, config, model_cfg["n_epochs"])
        with steps.step(
            f"Train GRU4Rec ({model_cfg['n_epochs']} epochs, layers {model_cfg['layers']})", "train"
        ):
            gru.fit(train_df, **config["training"], **keys, valid=valid, epoch_callback=callback)
        with steps.step("Save, log and register the model", "register"):
            model_path = config["paths"]["model_save"]
            if model_path:
                gru.save(model_path)
                model_path = str(Path(model_path).resolve())
                mlflow.set_tag("model_path", model_path)
            name, alias = tracking["registered_model"], tracking["alias"]
            logged = log_and_register(gru, registered_model=name, alias=alias)
            if name:
                note(f"registered {name} version {logged.version}" + (f" as @{alias}" if alias else ""))
    history = pd.DataFrame(gru.history_)
    return Trained(gru, run.info.run_id, logged.uri, logged.version, history, model_path=model_path)


def _epoch_logger(valid: pd.DataFrame | None, config: dict, n_epochs: int):
    """GRU4Rec's ``epoch_callback``: log the epoch's loss and validation Recall/MRR (MLflow step = epoch)."""
    import mlflow

    from spark_recs.evaluation.sessions import evaluate_sessions

    def log_epoch(epoch: int, model) -> None:
        record = model.history_[-1]
        metrics = {"train_loss": record["loss"], "epoch_seconds": record["seconds"]}
        line = f"epoch {epoch}/{n_epochs}: loss {record['loss']:.4f}"
        if valid is not None:
            with model.evaluating():
                result = evaluate_sessions(model, valid, **config["evaluation"], **config["data"])
            for cutoff in result.recall:
                metrics[f"valid_recall_at_{cutoff}"] = result.recall[cutoff]
                metrics[f"valid_mrr_at_{cutoff}"] = result.mrr[cutoff]
                line += f", valid recall@{cutoff} {result.recall[cutoff]:.4f} mrr@{cutoff} {result.mrr[cutoff]:.4f}"
        mlflow.log_metrics(metrics, step=epoch)
        note(f"{line} ({record['seconds']:.1f}s)")

    return log_epoch


# ---- evaluate -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    """What :func:`evaluate` measured: ``recall@N``/``mrr@N`` and the beyond-accuracy figures at each N
    (``coverage@N``, ``gini@N``, ``novelty@N``, ``popularity@N``, ``personalisation@N``, against the
    prepared train sessions), the counts behind them, its MLflow run."""

    metrics: dict[str, float]
    counts: dict[str, int]
    run_id: str


def evaluated_model(config: dict, model: str | None) -> str:
    """The model :func:`evaluate` scores: ``model``, else ``paths.model_load``, else ``paths.model_save``."""
    reference = model or config["paths"]["model_load"] or config["paths"]["model_save"]
    if not reference:
        raise ValueError(
            "evaluate needs --model (a model path or MLflow URI), or paths.model_load in the config"
        )
    return reference


def session_metrics(result) -> dict[str, float]:
    """``recall@N``, ``mrr@N`` and the beyond-accuracy figures (``coverage@N``, ...) of an evaluation."""
    recall = {f"recall@{c}": v for c, v in result.recall.items()}
    return recall | {f"mrr@{c}": v for c, v in result.mrr.items()} | result.beyond


def evaluate(
    spark: SparkSession,
    config: dict,
    prepared: str,
    model: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    model_dir: str | None = None,
) -> Evaluated:
    """Next-item Recall@N and MRR@N of a session model on the ``prepared`` test sessions, with the config's
    ``evaluation`` settings (sharded over Spark workers), logged to an MLflow run.

    ``model``: a path or MLflow URI (default :func:`evaluated_model`). ``model_dir``: on Spark Connect, a
    folder the workers can read (a Volume path) to ship the model through.
    """
    import mlflow

    from spark_recs.evaluation.sessions import evaluate_sessions
    from spark_recs.models.base import Recommender
    from spark_recs.serving.references import load_reference
    from spark_recs.tracking import log_metrics_clean, tracked_run

    reference = evaluated_model(config, model)
    steps = Steps(2)
    settings = config["evaluation"]
    data = {"input": prepared, "model": reference}
    with tracked_run(experiment, "evaluate", tracking_uri=tracking_uri, spark=spark, data=data) as run:
        mlflow.log_params({"model": str(reference), "input": prepared, "mode": settings["mode"]})
        with steps.step(f"Load model {reference} and the test sessions", "load"):
            loaded = load_reference(reference, tracking_uri).model
            if isinstance(loaded, Recommender):
                raise ValueError(
                    f"{reference} is a user model ({type(loaded).__name__}); evaluate scores session models: "
                    "compare user models with `spark-recs multieval`"
                )
            test, train = read_prepared(spark, prepared, "test"), read_prepared(spark, prepared, "train")
        with steps.step(f"Evaluate Recall/MRR@{settings['cutoff']} ({settings['mode']} ties)", "evaluate"):
            keys = config["data"]
            result = evaluate_sessions(loaded, test, **settings, **keys, model_dir=model_dir, train=train)
            if not result.n_predictions:
                raise ValueError(
                    f"nothing to score in {prepared_location(prepared, 'test')}: no session has two events on "
                    f"items the model knows ({result.n_dropped_events:,} events on unknown items); check that "
                    "the model was trained on these prepared sessions and that data_split.test_fraction > 0"
                )
        metrics = session_metrics(result)
        counts = {
            "n_predictions": result.n_predictions,
            "n_sessions": result.n_sessions,
            "n_dropped_events": result.n_dropped_events,
        }
        log_metrics_clean(metrics | counts)
    return Evaluated(metrics, counts, run.info.run_id)


# ---- tune ---------------------------------------------------------------------------------------------


def searched_space(spec, space_file: str | None):
    """The checked search space of a GRU4Rec config (:func:`~spark_recs.tuning.space.configured_space`)."""
    from spark_recs.models.gru4rec import GRU4Rec
    from spark_recs.tuning.space import configured_space

    return configured_space(spec, space_file, GRU4Rec)


def best_config(config: dict, params: dict) -> dict:
    """``config`` in the seed README's schema (its ``tune`` and ``search_space`` left out), with the model
    parameters a search found best."""
    best = without_search(config)
    best["model"].update(params)
    return best


def check_tune(config: dict):
    """The search space of ``config``, with its ``tune`` settings checked (before Spark starts)."""
    from spark_recs.tuning.objectives import session_metric
    from spark_recs.tuning.search import check_settings

    space = searched_space(config["search_space"], config["tune"]["space"])
    check_settings(config["tune"], space)
    session_metric(config["tune"]["metric"])
    return space


def tune(
    spark: SparkSession,
    config: dict,
    prepared: str,
    *,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    train_best: bool = False,
    register_as: str | None = None,
    alias: str | None = None,
) -> Tuned:
    """Search GRU4Rec's parameters over the config's search space with its ``tune`` settings: every trial
    trains on the ``prepared`` train sessions and is scored on the valid sessions, as a Spark task; the
    study and its MLflow runs are in ``tune.storage`` and ``tune.experiment`` (or ``experiment``). The
    best config is written to ``tune.best_config``. ``train_best``: then train it on train + valid,
    evaluate it once on the test sessions, log and register it (``register_as``, ``alias``)."""
    from spark_recs.tuning.objectives import GRU4RecObjective

    settings = settings_of(config, experiment)
    space = check_tune(config | {"tune": settings})
    keys = config["data"]
    columns = SessionColumns(**keys).names
    frames = {part: read_prepared(spark, prepared, part).select(*columns) for part in ("train", "valid")}
    if frames["valid"].isEmpty():
        raise ValueError(
            f"no valid sessions in {prepared_location(prepared, 'valid')}: a search scores its trials on them; "
            "prepare with data_split.valid_fraction > 0"
        )
    steps = Steps(4 if train_best else 3)

    def objective(paths: dict[str, str]) -> GRU4RecObjective:
        return GRU4RecObjective(
            paths["train"],
            paths["valid"],
            config["model"],
            config["training"],
            config["evaluation"],
            keys,
            settings["metric"],
        )

    tags = {"input": prepared, "model": "gru4rec"}
    best_of = functools.partial(best_config, config)
    tuned, best = search_copies(
        spark, frames, objective, space, settings, best_of, steps, tracking_uri=tracking_uri, tags=tags
    )
    if not train_best:
        return tuned
    with steps.step("Train the best config on train + valid, evaluate it once on test"):
        trained = train(
            spark,
            best,
            prepared,
            experiment=settings["experiment"],
            register_as=register_as,
            alias=alias,
            tracking_uri=tracking_uri,
            include_valid=True,
        )
        tested = evaluate(
            spark,
            best,
            prepared,
            trained.model_uri,
            experiment=settings["experiment"],
            tracking_uri=tracking_uri,
        )
        log_test_metrics(tuned.run_id, tested.metrics)
    return replace(tuned, trained=trained, test_metrics=tested.metrics)


# ---- promote ------------------------------------------------------------------------------------------


def check_promotion(config: dict) -> dict[str, float]:
    """The guards of the config's ``promotion`` section, its metrics checked against what ``evaluate``
    measures (``recall@N``, ``mrr@N`` and the beyond-accuracy figures at the ``evaluation.cutoff``
    values), before Spark starts."""
    from spark_recs.evaluation.beyond import BEYOND_METRICS
    from spark_recs.serving.promotion import parse_guards

    settings = config["promotion"]
    guards = parse_guards(settings["guards"] or [])
    names = ("recall", "mrr", *(m for m in BEYOND_METRICS if m != "diversity"))
    measured = [f"{m}@{c}" for c in config["evaluation"]["cutoff"] for m in names]
    for name in (settings["primary"], *guards):
        if name not in measured:
            raise ConfigError(f"promotion: {name!r} is not measured; evaluate gives {measured}")
    return guards


def promote(
    spark: SparkSession,
    config: dict,
    prepared: str,
    *,
    registered_model: str = DEFAULT_MODEL_NAME,
    experiment: str = "spark_recs-promote",
    tracking_uri: str | None = None,
    model_dir: str | None = None,
):
    """Score ``registered_model``'s ``promotion.challenger`` and ``promotion.champion`` versions on the
    ``prepared`` test sessions with the config's ``evaluation`` settings and move the champion alias to
    the challenger when it beats the champion (:func:`~spark_recs.serving.promotion.promote`)."""
    from spark_recs.evaluation.sessions import evaluate_sessions
    from spark_recs.serving.references import load_reference

    check_promotion(config)
    settings = config["promotion"]
    test, train = read_prepared(spark, prepared, "test"), read_prepared(spark, prepared, "train")

    def score(uri: str) -> dict[str, float]:
        model = load_reference(uri, tracking_uri).model
        keys = config["data"]
        result = evaluate_sessions(
            model, test, **config["evaluation"], **keys, model_dir=model_dir, train=train
        )
        return session_metrics(result)

    with Steps(1).step(f"Score {registered_model}@{settings['challenger']} and @{settings['champion']}"):
        decision = promote_with(
            settings,
            registered_model,
            score,
            experiment=experiment,
            tracking_uri=tracking_uri,
            spark=spark,
            data={"input": prepared},
        )
    return decision
