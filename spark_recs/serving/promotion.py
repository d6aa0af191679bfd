"""The champion/challenger gate: a registered model's ``challenger`` version replaces its ``champion`` only
when it measures better on the same held-out data.

:func:`promote` scores both aliases with one ``score(model_uri) -> metrics`` function (the task's own
evaluation on its test split), logs both, their differences and the decision to one MLflow run, and
moves the champion alias to the challenger's version when :func:`decide` says so: the primary metric
beats the champion's by ``margin`` (in its direction: errors such as ``rmse`` must fall) and no guard
metric is worse than the champion's by more than its tolerance. Without a champion the challenger
becomes champion. Aliases only, no stages (Unity Catalog has none).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from spark_recs.core.params import ConfigError

#: Metrics where lower is better; every other metric is better higher.
LOWER_IS_BETTER = ("rmse", "mae")


def better_is_lower(metric: str) -> bool:
    return metric.split("@")[0].lower() in LOWER_IS_BETTER


def parse_guards(entries: list[str]) -> dict[str, float]:
    """``["coverage@10:0.02", ...]``: each guard metric and how much worse than the champion it may be."""
    guards = {}
    for entry in entries:
        name, sep, tolerance = str(entry).rpartition(":")
        try:
            value = float(tolerance)
        except ValueError:
            value = math.nan
        if not sep or not name or not value >= 0:
            raise ConfigError(f"promotion.guards: {entry!r} is not metric:tolerance (a number >= 0)")
        guards[name] = value
    return guards


@dataclass(frozen=True)
class Decision:
    """What :func:`promote` decided, why, and the figures behind it."""

    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    challenger: dict[str, float]
    champion: dict[str, float] | None
    run_id: str

    @property
    def line(self) -> str:
        verdict = "promoted" if self.promoted else "kept the champion"
        return f"{verdict}: {self.reason}"


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    primary: str,
    margin: float = 0.0,
    guards: Mapping[str, float] | None = None,
) -> tuple[bool, str]:
    """``(promote?, reason)`` for the two sets of metrics (``champion`` None: there is none yet)."""
    for name in (primary, *(guards or {})):
        if name not in challenger:
            raise ConfigError(f"the evaluation gives no {name!r}; it gives {sorted(challenger)}")
    if champion is None:
        return True, "no champion yet: the first challenger becomes champion"

    def gain(name: str) -> float:  # how much better the challenger is (negative: worse)
        delta = challenger[name] - champion[name]
        return -delta if better_is_lower(name) else delta

    if not gain(primary) > margin:
        return False, (
            f"{primary} {challenger[primary]:.4f} does not beat the champion's {champion[primary]:.4f} "
            f"by more than {margin:g}"
        )
    for name, tolerance in (guards or {}).items():
        if gain(name) < -tolerance:
            return False, (
                f"guard {name} {challenger[name]:.4f} falls below the champion's {champion[name]:.4f} by more "
                f"than {tolerance:g}"
            )
    return True, f"{primary} {challenger[primary]:.4f} beats the champion's {champion[primary]:.4f}"


def promote(
    registered_model: str,
    score: Callable[[str], dict[str, float]],
    *,
    primary: str,
    margin: float = 0.0,
    guards: Mapping[str, float] | None = None,
    challenger_alias: str = "challenger",
    champion_alias: str = "champion",
    experiment: str = "spark_recs-promote",
    tracking_uri: str | None = None,
    spark=None,
    data: Mapping[str, object] | None = None,
) -> Decision:
    """Score ``registered_model@challenger_alias`` and ``@champion_alias`` with ``score`` and move the
    champion alias to the challenger when :func:`decide` says so; everything goes to one MLflow run
    (tagged with the ``spark`` session's engine and the ``data`` scored, as
    :func:`~spark_recs.tracking.run_tags` says)."""
    from spark_recs.runtime import configure_mlflow
    from spark_recs.tracking import log_metrics_clean, log_params_flat, tracked_run

    configure_mlflow(tracking_uri)
    client = mlflow.MlflowClient()
    challenger_version = _version(client, registered_model, challenger_alias)
    if challenger_version is None:
        raise ValueError(
            f"{registered_model} has no version with alias @{challenger_alias}: train and register one first"
        )
    champion_version = _version(client, registered_model, champion_alias)
    if champion_version == challenger_version:
        raise ValueError(f"{registered_model}@{challenger_alias} is already @{champion_alias}")
    run_name = f"promote-{registered_model}"
    with tracked_run(experiment, run_name, tracking_uri=tracking_uri, spark=spark, data=data) as run:
        log_params_flat(
            {"registered_model": registered_model, "primary": primary, "margin": margin}
            | {f"guard.{name}": tolerance for name, tolerance in (guards or {}).items()}
            | {"challenger_version": challenger_version, "champion_version": champion_version}
        )
        challenger = score(f"models:/{registered_model}/{challenger_version}")
        champion = (
            None if champion_version is None else score(f"models:/{registered_model}/{champion_version}")
        )
        promoted, reason = decide(challenger, champion, primary, margin, guards)
        figures = {f"challenger_{k}": v for k, v in challenger.items()}
        if champion is not None:
            figures |= {f"champion_{k}": v for k, v in champion.items()}
            figures |= {f"delta_{k}": challenger[k] - champion[k] for k in challenger if k in champion}
        log_metrics_clean(figures)
        mlflow.set_tags({"decision": "promoted" if promoted else "kept", "reason": reason})
        if promoted:
            client.set_registered_model_alias(registered_model, champion_alias, challenger_version)
    return Decision(
        promoted, reason, challenger_version, champion_version, challenger, champion, run.info.run_id
    )


def _version(client: mlflow.MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
