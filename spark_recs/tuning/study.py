"""The Optuna study of a search: its metric and direction, a seeded sampler, durable storage, resuming.

A study lives in an Optuna storage (default: SQLite in the work dir), so a search that is killed and
started again continues the same study: finished trials stay finished, and a trial that was running when
the search died is marked failed and queued again with the same parameters.
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState

from spark_recs.core.params import ConfigError
from spark_recs.runtime import work_dir
from spark_recs.tuning.space import SearchSpace

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid")
#: Metrics a search can optimise: ranking metrics take a cutoff (``recall@20``), errors do not.
RANKING_METRICS = ("recall", "mrr", "ndcg", "precision", "hit", "recip_rank")
ERROR_METRICS = ("rmse", "mae")


def direction(metric: str) -> str:
    """``minimize`` for an error (``rmse``, ``mae``), ``maximize`` for a ranking metric at a cutoff
    (``recall@20``, ``mrr@20``, ``ndcg@10``, ...)."""
    name, at, cutoff = metric.lower().partition("@")
    if name in ERROR_METRICS and not at:
        return "minimize"
    if name in RANKING_METRICS and cutoff.isdigit() and int(cutoff) > 0:
        return "maximize"
    raise ConfigError(
        f"cannot optimise {metric!r}: use one of {[f'{m}@N' for m in RANKING_METRICS]} (N a cutoff) or "
        f"{list(ERROR_METRICS)}"
    )


def sampler(name: str, seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """A seeded sampler: ``tpe`` (the default of the official ``paropt.py``), ``random`` or ``grid``."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise ConfigError(f"sampler must be one of {list(SAMPLERS)}, not {name!r}")


def default_storage() -> str:
    """SQLite in the work dir: ``<work dir>/tuning.db``."""
    return f"sqlite:///{work_dir() / 'tuning.db'}"


def open_study(
    name: str, metric: str, chosen: optuna.samplers.BaseSampler, storage: str | None = None
) -> optuna.Study:
    """The study ``name`` in ``storage`` (default :func:`default_storage`): created, or continued, with
    the trials a killed search left running marked failed and queued again with their parameters."""
    url = storage or default_storage()
    wanted = direction(metric)
    study = optuna.create_study(
        study_name=name, storage=url, direction=wanted, sampler=chosen, load_if_exists=True
    )
    if study.direction.name.lower() != wanted:
        raise ConfigError(
            f"study {name!r} in {url} {study.direction.name.lower()}s its metric, but {metric} is to "
            f"{wanted}: name the study after the metric, or pick another study name"
        )
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if stale:
        backend = optuna.storages.get_storage(url)
        study_id = backend.get_study_id_from_name(name)
        for trial in stale:
            trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            backend.set_trial_state_values(trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        log.warning(
            "study %s: %d trial(s) left running by a stopped search marked failed and queued again",
            name,
            len(stale),
        )
    return study


def finished(study: optuna.Study) -> int:
    """Trials that count towards the budget: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
