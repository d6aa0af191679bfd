"""The steps of the product's jobs, called alike by the CLI, the spark-submit jobs, the Databricks bundle's
wheel tasks and the notebooks.

Session data (GRU4Rec): :func:`prepare` -> :func:`train` -> :func:`evaluate` -> :func:`recommend`. User
models (Popular, Bias, BiasedMF, ItemKNN, ...): :func:`recommend` and :func:`predict` for a saved or
registered model, :func:`multieval` to compare them. :func:`demo` is the end-to-end demo job.

Every step takes a SparkSession and a validated config (:func:`spark_recs.config.load_config`), prints a
progress line per stage to stderr, and returns what it wrote and logged. Data sources are arguments, not
config keys: a CSV/TSV file, a Delta/Parquet path, or a ``catalog.schema.table`` name. A user error (a
missing table or column, a bad value) raises ``ValueError``/``FileNotFoundError`` with a message naming
the problem and the fix.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from spark_recs.config import ConfigError, defaults
from spark_recs.data.io import is_table_name, read_table, write_table
from spark_recs.data.schema import SchemaError, Validated, require_columns, validate
from spark_recs.data.sources import check_source, read_ratings, read_sessions, read_source, require_source
from spark_recs.progress import Steps
from spark_recs.runtime import cached, work_dir

#: What ``prepare`` writes: ``sessions_<part>`` under the output folder or schema.
PREPARED_PARTS = ("train", "valid", "test", "rejected")
DEFAULT_EXPERIMENT = "spark_recs-gru4rec"
DEFAULT_MODEL_NAME = "spark_recs-gru4rec"


def _note(text: str) -> None:
    print(f"    {text}", file=sys.stderr, flush=True)


# ---- sources (read through spark_recs.data.sources) -----------------------------------------------


def session_settings(keys: dict) -> dict[str, str]:
    """Which config key names each column of a session log (for the fix of a :class:`SchemaError`)."""
    return {keys[k]: f"data.{k}" for k in ("session_key", "item_key", "time_key")}


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


# ---- GRU4Rec: prepare, train, evaluate -----------------------------------------------------------


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
        _note(checked.summary())
        if checked.n_accepted == 0:
            raise ValueError(
                f"{source}: no usable rows ({checked.summary()}); fix the rows or the column mapping "
                "(data.session_key/item_key/time_key)"
            )
    with steps.step(
        f"Split sessions by time (valid {split['valid_fraction']:g}, test {split['test_fraction']:g})"
    ):
        parts = dict(
            zip(("train", "valid", "test"), train_valid_test_split(cached(checked.accepted), **split, **keys))
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


@dataclass(frozen=True)
class Trained:
    """What :func:`train` produced: the fitted model, its MLflow run and where the model can be loaded from."""

    model: object
    run_id: str
    model_uri: str
    model_path: str | None
    registered_version: str | None
    history: pd.DataFrame
    evaluation: pd.DataFrame | None = None


def train(
    spark: SparkSession,
    config: dict,
    prepared: str | None = None,
    *,
    experiment: str | None = None,
    register_as: str | None = None,
    alias: str | None = None,
    tracking_uri: str | None = None,
) -> Trained:
    """Train the model a config describes (``config["kind"]``) and track it in MLflow.

    ``gru4rec``: GRU4Rec on the ``prepared`` train sessions, validated on the valid sessions after every
    epoch; params, per-epoch training loss and validation Recall/MRR at the evaluation cutoffs are logged,
    the model is saved to ``paths.model_save`` (when set), logged, and registered as ``register_as``
    (``catalog.schema.model`` on Databricks) with ``alias``. ``rl``: a recnn-style actor
    (:func:`spark_recs.rl.training.train_from_config`); ``gym``: PPO on the MovieLens rating environment
    (:func:`spark_recs.rl.gym_agent.train_from_config`); their data and MLflow settings are in the config.

    ``experiment``, ``register_as`` and ``alias`` left at None keep the defaults (``spark_recs-gru4rec``,
    ``spark_recs-gru4rec``, ``challenger`` for GRU4Rec; the config's ``mlflow`` section for rl and gym);
    ``register_as=""`` logs the model without registering it.
    """
    kind = config.get("kind", "gru4rec")
    if kind == "gru4rec":
        name = DEFAULT_MODEL_NAME if register_as is None else register_as
        alias = "challenger" if alias is None else alias
        return _train_gru4rec(
            spark, config, prepared, experiment or DEFAULT_EXPERIMENT, name, alias, tracking_uri
        )
    if kind in ("rl", "gym"):
        return _train_rl(spark, config, experiment, register_as, alias, tracking_uri)
    raise ConfigError(f"a kind: {kind} config runs with `spark-recs {kind}`, not `spark-recs train`")


def _train_rl(spark, config, experiment, register_as, alias, tracking_uri) -> Trained:
    """RL or Gym training through its own ``train_from_config``, with the CLI's MLflow settings applied."""
    settings = dict(config["mlflow"])
    if experiment:
        settings["experiment"] = experiment
    if register_as is not None:
        settings["registered_model"] = register_as or None
    if alias is not None:
        settings["alias"] = alias or None
    config = {**config, "mlflow": settings}  # the caller's config stays as it was
    if config["kind"] == "gym":
        from spark_recs.rl.gym_agent import train_from_config

        result = train_from_config(config, tracking_uri=tracking_uri)
        model, version, evaluation = result["policy"], result["model_version"], result["table"]
        history = pd.DataFrame(result["curve"], columns=["step", "train_reward", "train_accuracy"])
    else:
        from spark_recs.rl.training import train_from_config

        result = train_from_config(config, tracking_uri=tracking_uri, spark=spark)
        model, version, history = (
            result["recommender"],
            result["model_version"],
            pd.DataFrame(result["history"]),
        )
        evaluation = pd.DataFrame([result["holdout"]]) if result["holdout"] else None
    return Trained(model, result["run_id"], result["model_uri"], None, version, history, evaluation)


def _train_gru4rec(spark, config, prepared, experiment, register_as, alias, tracking_uri) -> Trained:
    import mlflow

    from spark_recs.models.gru4rec import build_model
    from spark_recs.serving.registry import log_and_register
    from spark_recs.tracking import log_params_flat, tracked_run

    keys, model_cfg = config["data"], config["model"]
    steps = Steps(3)
    with steps.step(f"Load prepared sessions from {prepared}"):
        train_df = read_prepared(spark, prepared, "train").toPandas()
        valid_df = read_prepared(spark, prepared, "valid").toPandas()
        _note(f"train {len(train_df):,} events, valid {len(valid_df):,} events")
    valid = valid_df if len(valid_df) else None
    gru = build_model(config)
    with tracked_run(experiment, "train-gru4rec", tracking_uri=tracking_uri) as run:
        for section in ("model", "data", "data_split", "training", "evaluation"):
            log_params_flat(config[section], f"{section}.")
        mlflow.set_tags({"input": prepared, "kind": "gru4rec"})
        callback = _epoch_logger(valid, config, model_cfg["n_epochs"])
        with steps.step(f"Train GRU4Rec ({model_cfg['n_epochs']} epochs, layers {model_cfg['layers']})"):
            gru.fit(train_df, **config["training"], **keys, valid=valid, epoch_callback=callback)
        with steps.step("Save, log and register the model"):
            model_path = config["paths"]["model_save"]
            if model_path:
                gru.save(model_path)
                model_path = str(Path(model_path).resolve())
                mlflow.set_tag("model_path", model_path)
            logged = log_and_register(gru, registered_model=register_as or None, alias=alias)
            if register_as:
                as_alias = f" as @{alias}" if alias else ""
                _note(f"registered {register_as} version {logged.version}{as_alias}")
    return Trained(gru, run.info.run_id, logged.uri, model_path, logged.version, pd.DataFrame(gru.history_))


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
        _note(f"{line} ({record['seconds']:.1f}s)")

    return log_epoch


def evaluated_model(config: dict, model: str | None) -> str:
    """The model :func:`evaluate` scores: ``model``, else ``paths.model_load``, else ``paths.model_save``."""
    reference = model or config["paths"]["model_load"] or config["paths"]["model_save"]
    if not reference:
        raise ValueError(
            "evaluate needs --model (a model path or MLflow URI), or paths.model_load in the config"
        )
    return reference


def evaluate(
    spark: SparkSession,
    config: dict,
    prepared: str,
    model: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    model_dir: str | None = None,
) -> dict:
    """Next-item Recall@N and MRR@N of a session model on the ``prepared`` test sessions, with the config's
    ``evaluation`` settings (sharded over Spark workers), logged to an MLflow run.

    ``model``: a path or MLflow URI; default ``paths.model_load``, else ``paths.model_save``.
    ``model_dir``: on Spark Connect, a folder the workers can read (a Volume path) to ship the model through.
    """
    import mlflow

    from spark_recs.evaluation.sessions import evaluate_sessions
    from spark_recs.models.base import Recommender
    from spark_recs.serving.references import load_reference
    from spark_recs.tracking import log_metrics_clean, tracked_run

    reference = evaluated_model(config, model)
    steps = Steps(2)
    with steps.step(f"Load model {reference} and the test sessions"):
        loaded = load_reference(reference, tracking_uri).model
        if isinstance(loaded, Recommender):
            raise ValueError(
                f"{reference} is a user model ({type(loaded).__name__}); evaluate scores session models: "
                "compare user models with `spark-recs multieval`"
            )
        test = read_prepared(spark, prepared, "test")
    with steps.step(
        f"Evaluate Recall/MRR@{config['evaluation']['cutoff']} ({config['evaluation']['mode']} ties)"
    ):
        result = evaluate_sessions(
            loaded, test, **config["evaluation"], **config["data"], model_dir=model_dir
        )
        if not result.n_predictions:
            raise ValueError(
                f"nothing to score in {prepared_location(prepared, 'test')}: no session has two events on "
                f"items the model knows ({result.n_dropped_events:,} events on unknown items); check that the "
                "model was trained on these prepared sessions and that data_split.test_fraction > 0"
            )
    metrics = {f"recall@{c}": v for c, v in result.recall.items()} | {
        f"mrr@{c}": v for c, v in result.mrr.items()
    }
    counts = {
        "n_predictions": result.n_predictions,
        "n_sessions": result.n_sessions,
        "n_dropped_events": result.n_dropped_events,
    }
    with tracked_run(experiment, "evaluate", tracking_uri=tracking_uri) as run:
        mlflow.log_params({"model": str(reference), "input": prepared, "mode": config["evaluation"]["mode"]})
        log_metrics_clean(metrics | counts)
    return {"metrics": metrics, "counts": counts, "run_id": run.info.run_id}


# ---- batch recommendation and prediction ----------------------------------------------------------


def rejected_location(output: str) -> str:
    """Where :func:`recommend`/:func:`predict` keep the input rows they could not use: ``<output>_rejected``."""
    return f"{output.rstrip('/')}_rejected"


def _checked_input(checked: Validated, source: str, output: str | None, what: str, types: str) -> DataFrame:
    """The usable rows of a validated ``recommend``/``predict`` input; rejected rows are counted, printed
    and written beside ``output``; no usable row at all is an error naming the model's id types."""
    if checked.n_rejected:
        _note(checked.summary())
        if output:
            write_table(checked.rejected, rejected_location(output))
            _note(f"rejected rows (with a reason) written to {rejected_location(output)}")
    if checked.rows_in and not checked.n_accepted:
        raise ValueError(
            f"{what} {source}: none of the {checked.rows_in:,} rows has ids of the model's types ({types}); "
            f"{checked.summary()}"
        )
    return checked.accepted


def no_rows(what: str, source: str, output: str | None = None) -> ValueError:
    """The error of a step that made no ``what`` for a ``source`` that has rows."""
    where = f" (an empty table was written to {output})" if output else ""
    return ValueError(
        f"no {what} for any row of {source}{where}: the model knows none of its ids and has no fallback for "
        "them; check that the input and the model come from the same data"
    )


def _written(result: DataFrame, n_input: int, what: str, source: str, output: str | None) -> DataFrame:
    """``result``; once written to ``output``, an empty one for a non-empty input is an error (a returned,
    unwritten frame is lazy: whoever computes it checks, as the CLI does for the rows it prints)."""
    if output and n_input and result.count() == 0:
        raise no_rows(what, source, output)
    return result


def recommend(
    spark: SparkSession,
    model: str,
    source: str,
    n: int | None = 20,
    *,
    output: str | None = None,
    config: dict | None = None,
    every_prefix: bool = False,
    user_col: str = "user",
    sep: str | None = None,
    model_dir: str | None = None,
    tracking_uri: str | None = None,
) -> DataFrame:
    """Top-``n`` recommendations from ``model`` (a path or MLflow URI) for ``source``.

    A session model (GRU4Rec) reads ``source`` as a session log (columns from the config's ``data``
    section) and recommends the next items after each session's last event (after every event with
    ``every_prefix``); a user model reads the users of ``source`` (column ``user_col``). Ids are read in
    the model's id types; rows that cannot be used (null ids, ids of another type) are counted, printed
    and written to :func:`rejected_location` of ``output``. Written to ``output`` (a table or path) when
    given; returns the recommendations as a DataFrame. Writing no recommendation at all for a non-empty
    input is an error.
    """
    from spark_recs import batch
    from spark_recs.models.base import Recommender
    from spark_recs.serving.references import load_reference

    steps = Steps(2)
    with steps.step(f"Load model {model}"):
        handle = load_reference(model, tracking_uri)
        loaded = handle.model
        _note(f"{type(loaded).__name__}")
    what = f"Recommend the top {n} for {source}" + (f" into {output}" if output else "")
    with steps.step(what):
        if isinstance(loaded, Recommender):
            users = read_source(spark, source, "users", sep)
            require_columns(users, [user_col], f"users {source}", settings={user_col: "--user-col"})
            user_type = loaded.user_vocab.spark_type
            checked = validate(
                users, [user_col], id_type={user_col: user_type}, duplicates=False, what=f"users {source}"
            )
            users = _checked_input(checked, source, output, "users", f"{user_col} {user_type}")
            recs = batch.recommend(handle, users, n, user_col=user_col, output=output, model_dir=model_dir)
            return _written(recs, checked.n_accepted, "recommendations", source, output)
        keys = (config or defaults("gru4rec"))["data"]
        vocabulary = getattr(loaded, "item_vocab", None)
        item_type = vocabulary.spark_type if vocabulary is not None else "long"
        checked = read_sessions(
            spark,
            source,
            "sessions",
            **keys,
            sep=sep,
            id_type={keys["item_key"]: item_type},
            settings=session_settings(keys),
        )
        events = _checked_input(checked, source, output, "sessions", f"{keys['item_key']} {item_type}")
        recs = batch.recommend_sessions(
            handle, events, n, every_prefix, **keys, output=output, model_dir=model_dir
        )
        return _written(recs, checked.n_accepted, "recommendations", source, output)


def predict(
    spark: SparkSession,
    model: str,
    source: str,
    *,
    output: str | None = None,
    user_col: str = "user",
    item_col: str = "item",
    sep: str | None = None,
    model_dir: str | None = None,
    tracking_uri: str | None = None,
) -> DataFrame:
    """Rating predictions of a user model for the ``user, item`` pairs of ``source`` (other columns, e.g.
    ``rating``, are kept; a ``prediction`` column is added). Ids are read in the model's id types; unusable
    rows go to :func:`rejected_location` of ``output``. Written to ``output`` when given."""
    from spark_recs import batch
    from spark_recs.models.base import Recommender
    from spark_recs.serving.references import load_reference

    steps = Steps(2)
    with steps.step(f"Load model {model}"):
        handle = load_reference(model, tracking_uri)
        loaded = handle.model
        if not isinstance(loaded, Recommender):
            raise ValueError(
                f"{model} is a session model ({type(loaded).__name__}) and predicts no ratings: "
                "use `spark-recs recommend` for it, or pass a user model (Bias, BiasedMF, ItemKNN, ...)"
            )
    with steps.step(f"Predict the pairs of {source}" + (f" into {output}" if output else "")):
        pairs = read_source(spark, source, "pairs", sep)
        require_columns(
            pairs,
            [user_col, item_col],
            f"pairs {source}",
            settings={user_col: "--user-col", item_col: "--item-col"},
        )
        types = {user_col: loaded.user_vocab.spark_type, item_col: loaded.item_vocab.spark_type}
        checked = validate(
            pairs, [user_col, item_col], id_type=types, duplicates=False, what=f"pairs {source}"
        )
        pairs = _checked_input(
            checked, source, output, "pairs", ", ".join(f"{c} {t}" for c, t in types.items())
        )
        preds = batch.predict(
            handle,
            pairs,
            user_col=user_col,
            item_col=item_col,
            output=output,
            model_dir=model_dir,
        )
        return _written(preds, checked.n_accepted, "predictions", source, output)


# ---- comparisons and the demo ---------------------------------------------------------------------


def multieval(
    spark: SparkSession, config: dict, *, runs: list[int] | None = None, tracking_uri: str | None = None
) -> pd.DataFrame:
    """Run a ``kind: multieval`` config (LensKit-style comparison of user models, tracked in MLflow);
    returns the runs table (one row per RunId, with ``status``)."""
    from spark_recs.config import build_algorithms
    from spark_recs.data.split import SampleFrac, SampleN, partition_users
    from spark_recs.evaluation import MultiEval

    algorithms = build_algorithms(config["algorithms"])
    source, split, evaluation = config["data"]["ratings"], config["split"], config["evaluation"]
    checked = read_ratings(spark, source, "ratings (data.ratings)")
    _note(checked.summary())
    holdout = (
        SampleFrac(split["holdout_fraction"])
        if split["holdout_fraction"] is not None
        else SampleN(split["holdout"])
    )
    folds = list(partition_users(checked.accepted, split["partitions"], holdout, seed=split["seed"]))
    evaluator = MultiEval(
        multieval_path(config),
        predict=evaluation["predict"],
        recommend=evaluation["recommend"],
        experiment=evaluation["experiment"],
        tracking_uri=tracking_uri,
    )
    for name, algorithm in algorithms:
        evaluator.add_algorithms(algorithm, name=name)
    evaluator.add_datasets(folds, name=config["data"]["name"])
    if evaluation["persist_data"]:
        evaluator.persist_data()
    evaluator.run(runs or None)
    return evaluator.collect_results()


def multieval_path(config: dict) -> str:
    """Where a MultiEval config's runs go: ``evaluation.path``, else ``<work dir>/multieval/<data.name>``."""
    return config["evaluation"]["path"] or str(work_dir() / "multieval" / config["data"]["name"])


def multieval_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean metrics and timings per algorithm over the runs of :func:`multieval`."""
    metrics = [c for c in results.columns if "@" in c or c in ("ndcg", "recip_rank", "rmse", "mae")]
    columns = [c for c in metrics + ["TrainTime", "RecTime"] if c in results.columns]
    return results.groupby("AlgoStr")[columns].mean().round(4)


def demo(spark: SparkSession, config: dict) -> dict:
    """Run the demo job (:func:`spark_recs.demo.run_demo`) with a ``kind: demo`` config; no next-item
    target to score is an error."""
    data, evaluation = config["data"], config["evaluation"]
    if max(evaluation["cutoff"]) > evaluation["n"]:
        raise ConfigError(
            f"evaluation.cutoff {evaluation['cutoff']} exceeds evaluation.n = {evaluation['n']}: "
            "raise evaluation.n or lower the cutoffs"
        )
    if data["sessions"] and data["ratings"]:
        raise ConfigError("give data.sessions or data.ratings, not both")
    try:
        result = _run_demo(spark, config)
    except SchemaError as exc:
        if not data["sessions"]:
            raise
        looks_like_ratings = {"user", "item"} <= set(exc.found)
        hint = (
            f"it looks like ratings: pass it as data.ratings={data['sessions']}",
            f"it looks like ratings: run `spark-recs demo --ratings {data['sessions']}`",
        )
        raise exc.fixed_by(session_settings(data), hint if looks_like_ratings else None) from None
    if not result["metrics"]["n_targets"]:
        raise ValueError(
            f"the demo found no next-item target to score: the test sessions (those ending in the last "
            f"{data['test_days']:g} days) are empty or hold no item seen in training; raise data.test_days "
            "(--test-days) or give more data"
        )
    return result


def _run_demo(spark: SparkSession, config: dict) -> dict:
    from spark_recs.demo import DemoConfig, run_demo

    return run_demo(spark, DemoConfig.from_config(config))


def override(key: str, value) -> str:
    """A ``--set`` assignment giving ``key`` exactly ``value`` (strings quoted, so ``"123"`` stays a string)."""
    return f"{key}={json.dumps(value)}"
