"""The Optuna study of a search: its metric and direction, a seeded sampler, durable storage, resuming.

A study lives in an Optuna storage (default: SQLite in the work dir), so a search that is killed and
started again continues the same study: finished trials stay finished, and a trial that was running when
the search died is marked failed and queued again with the same parameters.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.trial import TrialState

from spark_recs.core.params import ConfigError
from spark_recs.runtime import work_dir
from spark_recs.tuning.space import SearchSpace

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median")
#: The user attribute of a trial a stopped search left running (failed, and queued again).
INTERRUPTED = "interrupted"
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
        return _GridSampler(space.grid(), seed=seed)
    raise ConfigError(f"sampler must be one of {list(SAMPLERS)}, not {name!r}")


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, without stopping the study when the grid is done (``Study.stop`` works only
    inside ``Study.optimize``; a search stops at the grid's size itself)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def pruner(name: str) -> optuna.pruners.BasePruner:
    """``none`` (every trial runs all its epochs: exactly reproducible) or ``median`` (a trial whose
    validation metric after an epoch is worse than the median of the finished trials at that epoch stops;
    from the sixth trial on, and from its second epoch)."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    raise ConfigError(f"pruner must be one of {list(PRUNERS)}, not {name!r}")


def default_storage() -> str:
    """SQLite in the work dir: ``<work dir>/tuning.db``."""
    return f"sqlite:///{work_dir() / 'tuning.db'}"


def storage(url: str | None) -> str | optuna.storages.BaseStorage:
    """The Optuna storage of ``url`` (default :func:`default_storage`): a database URL
    (``sqlite:///path``, ``postgresql://...``), or the path of a ``.journal`` file, an append-only log
    that suits shared file systems such as Databricks Volumes, where SQLite's locks are unreliable."""
    url = check_storage(url or default_storage())
    if "://" in url:
        return url
    from optuna.storages.journal import JournalFileBackend

    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(url))


def check_storage(url: str | None) -> str | None:
    """``url`` when it names a storage :func:`storage` opens, else a one-line :class:`ConfigError`."""
    if url is not None and "://" not in url and not url.endswith(".journal"):
        raise ConfigError(
            f"tune.storage must be a database URL (sqlite:///path) or a .journal file, not {url!r}"
        )
    return url


def open_study(
    name: str, metric: str, chosen: optuna.samplers.BaseSampler, storage_url: str | None = None
) -> optuna.Study:
    """The study ``name`` in ``storage_url`` (:func:`storage`): created, or continued, with
    the trials a killed search left running marked failed and queued again with their parameters."""
    url = storage_url or default_storage()
    backend = optuna.storages.get_storage(storage(url))
    wanted = direction(metric)
    study = optuna.create_study(
        study_name=name, storage=backend, direction=wanted, sampler=chosen, load_if_exists=True
    )
    if study.direction.name.lower() != wanted:
        raise ConfigError(
            f"study {name!r} in {url} {study.direction.name.lower()}s its metric, but {metric} is to "
            f"{wanted}: name the study after the metric, or pick another study name"
        )
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if stale:
        study_id = backend.get_study_id_from_name(name)
        for trial in stale:
            trial_id = backend.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            backend.set_trial_user_attr(trial_id, INTERRUPTED, True)
            backend.set_trial_state_values(trial_id, TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        log.warning(
            "study %s: %d trial(s) left running by a stopped search marked failed and queued again",
            name,
            len(stale),
        )
    return study


def finished(study: optuna.Study) -> int:
    """Trials that count towards the budget: complete, pruned, or failed by their objective (not those
    a stopped search left running: they run again)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return sum(not t.user_attrs.get(INTERRUPTED) for t in done)
