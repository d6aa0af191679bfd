"""What every task shares: the shape of its config schema, its typed training result, progress notes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from spark_recs.core.params import NUMBER, ConfigError, Rule, declarations

#: A config section: each key's default value and rule.
Section = dict[str, tuple[Any, Rule]]


def section(declared: Any) -> Section:
    """A config section from a component's parameter declaration (:mod:`spark_recs.core.params`)."""
    return {name: (p.default, p.rule) for name, p in declarations(declared).items()}


def note(text: str) -> None:
    """A detail line under the current progress step, on stderr."""
    print(f"    {text}", file=sys.stderr, flush=True)


def flat(config: dict) -> dict[str, Any]:
    """``section.key -> value`` for every key of a loaded config (its MLflow params)."""
    return {
        f"{name}.{key}": value
        for name, values in config.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


def session_settings(keys: dict) -> dict[str, str]:
    """Which config key names each column of a session log (the fix a :class:`SchemaError` names)."""
    return {keys[k]: f"data.{k}" for k in ("session_key", "item_key", "time_key")}


@dataclass(frozen=True)
class Trained:
    """What a ``train`` step produced: the fitted model, its MLflow run and where it can be loaded from.

    ``history`` has one row per epoch (GRU4Rec, RL) or rollout (Gym); ``evaluation`` is the RL holdout's
    metrics or the Gym's table of methods; ``trainer`` what fitted the model (the RL algorithm, the PPO
    agent), for inspection.
    """

    model: object
    run_id: str
    model_uri: str
    registered_version: str | None
    history: pd.DataFrame
    evaluation: pd.DataFrame | None = None
    model_path: str | None = None
    trainer: object = None


@dataclass(frozen=True)
class Task:
    """One job kind: the module holding its config schema (``schema()``) and its steps, each named like
    the ``spark-recs`` command that runs it (or its option: ``multieval --plan``, ``--collect``) and
    called as ``step(spark, config, ...)``."""

    kind: str
    module: str
    steps: tuple[str, ...]
    summary: str

    def schema(self) -> dict[str, Section | Callable]:
        """Every section of a ``kind`` config (a section given as a function checks a list of entries)."""
        return importlib.import_module(self.module).schema()

    def step(self, name: str) -> Callable:
        """The step ``name``; a step this kind does not have is a one-line :class:`ConfigError`."""
        if name not in self.steps:
            runs = " / ".join(f"`spark-recs {s}`" for s in self.steps)
            raise ConfigError(f"a kind: {self.kind} config runs with {runs}, not `spark-recs {name}`")
        return getattr(importlib.import_module(self.module), name)


def mlflow_section(experiment: str, registered_model: str) -> Section:
    """The ``mlflow`` section of a trainer's config: where its run goes and how its model is registered."""
    return {
        "experiment": (experiment, Rule(str)),
        "run_name": (None, Rule(str, nullable=True)),
        "registered_model": (registered_model, Rule(str, nullable=True)),
        "alias": ("challenger", Rule(str, nullable=True)),
    }


def promotion_section(primary: str) -> Section:
    """The ``promotion`` section of a task with a ``promote`` step: the champion/challenger gate of
    :mod:`spark_recs.serving.promotion`, judged on ``primary`` by default."""
    return {
        "primary": (primary, Rule(str)),
        "margin": (0.0, Rule(NUMBER)),
        "guards": (None, Rule(list, items=Rule(str), nullable=True)),  # ["mrr@20:0.01", ...]
        "challenger": ("challenger", Rule(str)),
        "champion": ("champion", Rule(str)),
    }


def promote_with(
    settings: dict,
    registered_model: str,
    score,
    *,
    experiment: str,
    tracking_uri: str | None,
    spark=None,
    data: dict | None = None,
):
    """Run the gate of a ``promotion`` section for ``registered_model`` with ``score(model_uri)`` (its
    run tagged with the ``spark`` engine and the ``data`` scored)."""
    from spark_recs.serving.promotion import parse_guards, promote

    decision = promote(
        registered_model,
        score,
        primary=settings["primary"],
        margin=settings["margin"],
        guards=parse_guards(settings["guards"] or []),
        challenger_alias=settings["challenger"],
        champion_alias=settings["champion"],
        experiment=experiment,
        tracking_uri=tracking_uri,
        spark=spark,
        data=data,
    )
    note(decision.line)
    return decision


def mlflow_settings(config: dict, experiment: str | None, register_as: str | None, alias: str | None) -> dict:
    """The config's ``mlflow`` section with the command line's choices applied (None: keep the config's;
    ``register_as=""``: log without registering); the config itself is left as it was."""
    settings = dict(config["mlflow"])
    if experiment:
        settings["experiment"] = experiment
    if register_as is not None:
        settings["registered_model"] = register_as or None
    if alias is not None:
        settings["alias"] = alias or None
    return settings


def no_prepared_input(kind: str, prepared: str | None) -> None:
    """A ``train`` input given to a kind that names its data in its config is an error, not ignored."""
    if prepared:
        raise ConfigError(
            f"--input is for kind: gru4rec; a kind: {kind} config names its data in its data section: "
            "drop --input"
        )
