"""The MultiEval job (``kind: multieval``): a LensKit-style comparison of user models over user crossfolds,
run by :class:`~spark_recs.evaluation.multieval.MultiEval` and tracked in MLflow."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pyspark.sql import SparkSession

from spark_recs.core.params import NUMBER, ConfigError, Rule, closest
from spark_recs.data.sources import read_ratings
from spark_recs.runtime import work_dir

from .base import Section, note

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
    },
}


def schema() -> dict[str, Section | Callable]:
    """The ``kind: multieval`` schema (:data:`SCHEMA`)."""
    return SCHEMA


def multieval(
    spark: SparkSession, config: dict, *, runs: list[int] | None = None, tracking_uri: str | None = None
) -> pd.DataFrame:
    """Run a ``kind: multieval`` config (LensKit-style comparison of user models, tracked in MLflow);
    returns the runs table (one row per RunId, with ``status``)."""
    from spark_recs.data.split import SampleFrac, SampleN, partition_users
    from spark_recs.evaluation import MultiEval

    algorithms = build_algorithms(config["algorithms"])
    source, split, evaluation = config["data"]["ratings"], config["split"], config["evaluation"]
    checked = read_ratings(spark, source, "ratings (data.ratings)")
    note(checked.summary())
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
