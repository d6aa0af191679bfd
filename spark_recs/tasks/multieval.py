"""The MultiEval job (``kind: multieval``): a LensKit-style comparison of user models over user crossfolds,
run by :class:`~spark_recs.evaluation.multieval.MultiEval` and tracked in MLflow, in one step
(``multieval``) or fanned out over job tasks (``plan``, then ``multieval`` with a slice of the runs per
task, then ``collect``); ``tune`` searches the parameters of one of its algorithms."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import SparkSession

from spark_recs.core.params import NUMBER, ConfigError, Rule, closest
from spark_recs.data.movielens import genre_vectors, has_items
from spark_recs.data.sources import read_ratings
from spark_recs.runtime import work_dir

from .base import Section, Trained, note, section
from .tuning import (
    Tuned,
    log_test_metrics,
    search_copies,
    settings_of,
    space_shape,
    without_search,
)

if TYPE_CHECKING:
    from spark_recs.evaluation import MultiEval

#: The baselines a MultiEval config may name by class name.
ALGORITHMS = {
    "Popular": "spark_recs.models.popular:Popular",
    "Bias": "spark_recs.models.bias:Bias",
    "BiasedMF": "spark_recs.models.mf:BiasedMF",
    "ImplicitMF": "spark_recs.models.mf:ImplicitMF",
    "ItemKNN": "spark_recs.models.knn:ItemKNN",
}


def build_algorithms(entries: list) -> list[tuple[str, object]]:
    """``(name, unfitted model)`` for each ``algorithms`` entry of a MultiEval config; errors name the entry.

    A ``class`` is a built-in name (:data:`ALGORITHMS`) or the ``module:Class`` of the user's own code,
    whose module is imported: the config names it on purpose (unlike a model file's ``kind``).
    """
    from spark_recs.models.base import import_model_class, model_class

    if not isinstance(entries, list) or not entries:
        raise ConfigError("algorithms must be a non-empty list of {class: ..., params: {...}} entries")
    built = []
    for i, entry in enumerate(entries):
        where = f"algorithms[{i}]"
        if not isinstance(entry, dict) or "class" not in entry:
            raise ConfigError(f"{where} must be a mapping with a 'class' key, got {entry!r}")
        unknown = set(entry) - {"class", "name", "params"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {sorted(unknown)}; valid: class, name, params")
        spec = str(entry["class"])
        if spec not in ALGORITHMS and ":" not in spec:
            raise ConfigError(f"{where}.class {spec!r} is unknown{closest(spec, list(ALGORITHMS))}")
        try:
            cls = model_class(ALGORITHMS[spec]) if spec in ALGORITHMS else import_model_class(spec)
        except ValueError as exc:
            raise ConfigError(f"{where}.class: {exc}") from None
        try:
            model = cls(**(entry.get("params") or {}))
        except (TypeError, ConfigError) as exc:  # an unknown parameter, a value out of range
            raise ConfigError(f"{where}.params: {exc}") from None
        built.append((entry.get("name") or entry["class"], model))
    return built


#: Every key of a MultiEval config (``spark-recs multieval``) with its default value and rule, by section.
SCHEMA: dict[str, Section | Callable] = {
    "data": {
        "ratings": ("../shared/data/ml-latest-small", Rule(str, source=True)),
        "name": ("ml-latest-small", Rule(str)),
        # diversity@10 over the movies' genres; null: when data.ratings is a MovieLens folder with its movies
        "genres": (None, Rule(bool, nullable=True)),
    },
    "split": {
        "partitions": (5, Rule(int, 2)),
        "holdout": (5, Rule(int, 1, nullable=True)),
        "holdout_fraction": (None, Rule(NUMBER, 0, 1, high_open=True, nullable=True)),
        "seed": (42, Rule(int, 0)),
    },
    # A list of {class: Popular | Bias | BiasedMF | ImplicitMF | ItemKNN | "module:Class", name, params}
    "algorithms": build_algorithms,
    "evaluation": {
        "path": (None, Rule(str, nullable=True)),  # null: <work dir>/multieval/<data.name>
        "recommend": (100, Rule(int, 1)),
        "predict": (True, Rule(bool)),
        "experiment": ("spark_recs-multieval", Rule(str)),
        "persist_data": (True, Rule(bool)),
        "results_table": (None, Rule(str, nullable=True)),  # the runs table as a table or path too
    },
}


def schema() -> dict[str, Section | Callable]:
    """The ``kind: multieval`` schema (:data:`SCHEMA`), then what ``tune`` reads: its settings (``tune``,
    optimising ``ndcg@10`` by default) and the dimensions to search (``search_space``)."""
    from spark_recs.tuning.search import SearchParams

    return SCHEMA | {
        "tune": section(SearchParams) | {"metric": ("ndcg@10", Rule(str))},
        "search_space": space_shape,
    }


def evaluation_of(
    spark: SparkSession, config: dict, *, tracking_uri: str | None = None, combine: bool = True
) -> MultiEval:
    """The :class:`~spark_recs.evaluation.MultiEval` of a ``kind: multieval`` config in its folder
    (:func:`multieval_path`), its folds persisted there when ``evaluation.persist_data``. The ratings are
    read and split only when no persisted folds exist, so the tasks of a fanned-out job reuse the planning
    task's. A folder planned with another config is refused (:func:`check_folder`)."""
    from spark_recs.data.split import partition_users
    from spark_recs.evaluation import MultiEval

    algorithms = build_algorithms(config["algorithms"])
    path, split, evaluation = multieval_path(config), config["split"], config["evaluation"]
    check_folder(config, path)

    def folds() -> list:
        checked = read_ratings(spark, config["data"]["ratings"], "ratings (data.ratings)")
        note(checked.summary())
        holdout = holdout_of(split)
        return list(partition_users(checked.accepted, split["partitions"], holdout, seed=split["seed"]))

    evaluator = MultiEval(
        path,
        predict=evaluation["predict"],
        recommend=evaluation["recommend"],
        experiment=evaluation["experiment"],
        tracking_uri=tracking_uri,
        combine=combine,
        spark=spark,
    )
    for name, algorithm in algorithms:
        evaluator.add_algorithms(algorithm, name=name)
    genres = genres_folder(config["data"])
    vectors = functools.partial(genre_vectors, spark, genres) if genres else None
    evaluator.add_datasets(folds, name=config["data"]["name"], item_vectors=vectors)
    if evaluation["persist_data"]:
        evaluator.persist_data()
    return evaluator


def genres_folder(data: dict) -> str | None:
    """The MovieLens folder whose genres give the item vectors of ``diversity@10`` (``data.genres``), or
    None; a ConfigError when ``data.genres`` is true and ``data.ratings`` is no such folder (needs no
    Spark: the CLI checks it before starting a session)."""
    wanted, source = data["genres"], data["ratings"]
    if wanted is False:
        return None
    if has_items(source):
        return source
    if wanted:
        raise ConfigError(
            f"data.genres: {source} is not a MovieLens folder with its movies file (movies.csv, movies.dat "
            "or u.item); point data.ratings at the folder, or set data.genres: false"
        )
    return None


def multieval(
    spark: SparkSession, config: dict, *, runs=None, tracking_uri: str | None = None
) -> pd.DataFrame:
    """Run a ``kind: multieval`` config (LensKit-style comparison of user models, tracked in MLflow);
    returns the runs table of the runs done (one row per RunId, with ``status``). ``runs``: only those
    (RunIds, ranges, slices ``k/n``: :func:`~spark_recs.evaluation.multieval.plan.run_ids`), one task of a
    fan-out, which leaves the runs table and plots to :func:`collect`; else every run, then those."""
    from spark_recs.evaluation.multieval.plan import run_ids

    evaluator = evaluation_of(spark, config, tracking_uri=tracking_uri, combine=runs is None)
    evaluator.run(runs)
    results = evaluator.collect_results()
    if runs is None:
        write_results(spark, config, results)
        return results
    return results[results["RunId"].isin(run_ids(runs, evaluator.run_count()))].reset_index(drop=True)


def plan(spark: SparkSession, config: dict, *, tracking_uri: str | None = None) -> pd.DataFrame:
    """The planning task of a fanned-out MultiEval: split the ratings and persist the folds, create the
    parent MLflow run the tasks after it share; returns the planned runs, ``done`` where recorded ok."""
    if not config["evaluation"]["persist_data"]:
        raise ConfigError(
            "evaluation.persist_data is false: a fanned-out MultiEval needs the folds the planning task "
            "writes (set it to true)"
        )
    evaluator = evaluation_of(spark, config, tracking_uri=tracking_uri, combine=False)
    evaluator.parent_run()
    planned, results = evaluator.planned_runs(), evaluator.collect_results()
    return planned.assign(done=planned["RunId"].isin(results.loc[results["status"] == "ok", "RunId"]))


def collect(spark: SparkSession, config: dict, *, tracking_uri: str | None = None) -> pd.DataFrame:
    """The final task of a fanned-out MultiEval: rebuild the runs table and plots, log them to the parent
    run and write ``evaluation.results_table``; returns the runs table with a ``not run`` row for every
    planned run without a record."""
    evaluator = evaluation_of(spark, config, tracking_uri=tracking_uri)
    results = evaluator.combine_outputs()
    write_results(spark, config, results)
    planned = evaluator.planned_runs()
    missing = planned[~planned["RunId"].isin(results["RunId"])].assign(status="not run")
    table = pd.concat([results, missing], ignore_index=True) if len(missing) else results
    return table.sort_values("RunId", kind="stable").reset_index(drop=True)


def write_results(spark: SparkSession, config: dict, results: pd.DataFrame) -> None:
    """Write the runs table to ``evaluation.results_table`` (a table name or a path), when set."""
    from spark_recs.data.io import write_table

    target = config["evaluation"]["results_table"]
    if target is not None:
        text = results.select_dtypes(include="object").columns
        write_table(spark.createDataFrame(results.astype(dict.fromkeys(text, "string"))), target)


#: The config values that define an evaluation's runs (RunId -> algorithm, fold): a folder keeps them.
PLANNED = {
    "data": ("ratings", "name", "genres"),
    "split": ("partitions", "holdout", "holdout_fraction", "seed"),
    "evaluation": ("recommend", "predict"),
}
PLANNED_FILE = "config.json"


def check_folder(config: dict, path: str) -> None:
    """Record in ``path`` the config values that define its runs (:data:`PLANNED` and the algorithms), or
    check them against the recorded ones: a folder's recorded runs are skipped by later calls, so a
    changed config must use another folder."""
    planned = {section: {k: config[section][k] for k in keys} for section, keys in PLANNED.items()}
    planned["algorithms"] = config["algorithms"]
    file = Path(path) / PLANNED_FILE
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(planned, indent=1, sort_keys=True, default=str))
        return
    recorded = json.loads(file.read_text())
    now = json.loads(json.dumps(planned, sort_keys=True, default=str))
    changed = [
        f"{section}.{key}"
        for section, keys in PLANNED.items()
        for key in keys
        if recorded.get(section, {}).get(key) != now[section][key]
    ] + (["algorithms"] if recorded.get("algorithms") != now["algorithms"] else [])
    if changed:
        raise ConfigError(
            f"evaluation.path {path} holds the runs of a config with other {', '.join(changed)}: its recorded "
            "runs would be skipped as done; set evaluation.path to a new folder (or remove this one)"
        )


def holdout_of(split: dict):
    """The per-user holdout of the ``split`` section: ``holdout_fraction`` of each test user's ratings
    when set, else ``holdout`` of them."""
    from spark_recs.data.split import SampleFrac, SampleN

    fraction = split["holdout_fraction"]
    return SampleFrac(fraction) if fraction is not None else SampleN(split["holdout"])


def multieval_path(config: dict) -> str:
    """Where a MultiEval config's runs go: ``evaluation.path``, else ``<work dir>/multieval/<data.name>``."""
    return config["evaluation"]["path"] or str(work_dir() / "multieval" / config["data"]["name"])


def multieval_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean metrics and timings per algorithm over the runs of :func:`multieval`."""
    metrics = [c for c in results.columns if "@" in c or c in ("ndcg", "recip_rank", "rmse", "mae")]
    columns = [c for c in metrics + ["TrainTime", "RecTime"] if c in results.columns]
    return results.groupby("AlgoStr")[columns].mean().round(4)


# ---- tune ---------------------------------------------------------------------------------------------


def check_tune(config: dict):
    """``(name, model class, fixed parameters, search space)`` of a MultiEval config's search, its
    ``tune`` settings checked (before Spark starts): the config names exactly one algorithm, the one
    searched, with its fixed parameters."""
    from spark_recs.tuning.objectives import check_user_metric
    from spark_recs.tuning.search import check_settings
    from spark_recs.tuning.space import configured_space

    algorithms = build_algorithms(config["algorithms"])
    if len(algorithms) != 1:
        raise ConfigError(
            f"tune searches one algorithm's parameters: the config lists {len(algorithms)}; keep one entry "
            "in algorithms (its params are the fixed ones)"
        )
    name, model = algorithms[0]
    space = configured_space(config["search_space"], config["tune"]["space"], type(model))
    check_settings(config["tune"], space)
    check_user_metric(config["tune"]["metric"], config["evaluation"]["recommend"], type(model))
    return name, type(model), config["algorithms"][0].get("params") or {}, space


def search_splits(ratings, split: dict) -> tuple:
    """``(train, test, search_train, valid)``: MultiEval's first fold of ``ratings`` with the ``split``
    settings (its test users' held-out ratings are ``test``), and the first fold of that ``train`` cut the
    same way (the ratings a search fits on, and the held-out ones it is scored on)."""
    from spark_recs.data.split import partition_users

    def first_fold(frame):
        return next(iter(partition_users(frame, split["partitions"], holdout_of(split), seed=split["seed"])))

    train, test = first_fold(ratings)
    return (train, test, *first_fold(train))


def best_config(config: dict, params: dict) -> dict:
    """The MultiEval config (its ``tune`` and ``search_space`` left out) with the algorithm's parameters
    a search found best: what ``spark-recs multieval`` runs."""
    best = without_search(config, "multieval")
    best["algorithms"][0]["params"] = {**(best["algorithms"][0].get("params") or {}), **params}
    return best


def tune(
    spark: SparkSession,
    config: dict,
    *,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    train_best: bool = False,
    register_as: str | None = None,
    alias: str | None = None,
) -> Tuned:
    """Search the parameters of the config's one algorithm: the ratings are split as MultiEval's first
    fold (its test users' held-out ratings are the test split), the fold's train split again the same way
    into train and valid; every trial fits on train and is scored on valid, as a Spark task. The best
    config is written to ``tune.best_config``. ``train_best``: then fit it on train + valid, score it once
    on test, log and register it (``register_as``, default ``spark_recs-<name>``; ``alias``, default
    ``challenger``)."""
    import mlflow

    from spark_recs.data.io import collect_columns
    from spark_recs.progress import Steps
    from spark_recs.serving.registry import log_and_register
    from spark_recs.tracking import log_metrics_clean, log_params_flat, tracked_run
    from spark_recs.tuning.objectives import UserModelObjective, user_model_score

    settings = settings_of(config, experiment)
    name, model, fixed, space = check_tune(config | {"tune": settings})
    split, n, source = config["split"], config["evaluation"]["recommend"], config["data"]["ratings"]
    checked = read_ratings(spark, source, "ratings (data.ratings)")
    note(checked.summary())

    train, test, inner, valid = search_splits(checked.accepted, split)
    steps = Steps(4 if train_best else 3)

    def objective(paths: dict[str, str]) -> UserModelObjective:
        return UserModelObjective(paths["train"], paths["valid"], model, fixed, settings["metric"], n)

    tags = {"input": source, "model": name}
    frames = {"train": inner, "valid": valid}
    best_of = functools.partial(best_config, config)
    tuned, best = search_copies(
        spark, frames, objective, space, settings, best_of, steps, tracking_uri=tracking_uri, tags=tags
    )
    if not train_best:
        return tuned
    with steps.step(f"Fit the best {name} on train + valid, score it once on test"):
        fitted = model(**(fixed | tuned.best_params))
        fitted.fit(collect_columns(train, train.columns))
        tested = {
            settings["metric"]: user_model_score(
                fitted, collect_columns(test, test.columns), settings["metric"], n
            )
        }
        registered = f"spark_recs-{name.lower()}" if register_as is None else register_as or None
        with tracked_run(settings["experiment"], f"train-{name}", tracking_uri=tracking_uri) as run:
            log_params_flat(fitted.get_params(), "model.")
            mlflow.set_tags({"input": source, "kind": "multieval", "fit_on": "train+valid"})
            log_metrics_clean({f"test_{k}": v for k, v in tested.items()})
            chosen_alias = "challenger" if alias is None else alias or None
            logged = log_and_register(fitted, registered_model=registered, alias=chosen_alias)
        log_test_metrics(tuned.run_id, tested)
    trained = Trained(fitted, run.info.run_id, logged.uri, logged.version, pd.DataFrame())
    return replace(tuned, trained=trained, test_metrics=tested)
