"""A search fanned out over Spark: the driver asks Optuna for trials and runs each as a Spark task.

``parallelism`` driver threads each loop: ask the study for a trial (under one lock), run it as a
one-task Spark job (:mod:`.trials`), tell the study its result and record it as a nested MLflow run.
A slot that frees up starts the next trial at once, so a long trial holds back no other. The trials
read their data from Parquet copies under ``data_dir`` (:func:`task_inputs`), not from the closure.
With ``parallelism`` 1 and a seed, a search is reproducible: the same trials, the same best value.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState
from pyspark.sql import DataFrame, SparkSession

from spark_recs.core.params import NUMBER, ConfigError, Rule, param
from spark_recs.runtime import on_databricks, task_slots, work_dir
from spark_recs.serving.transport import task_threads

from .runs import StudyRun
from .space import SearchSpace
from .study import PRUNERS, SAMPLERS, check_storage, direction, finished, open_study, pruner, sampler
from .trials import RESULT_SCHEMA, Objective, TrialResult, TrialTask, run_in_task


@dataclass(frozen=True)
class SearchParams:
    """The settings of a search (a config's ``tune`` section)."""

    study: str = param("tune", Rule(str), "the study's name in its storage; the same name continues it")
    metric: str = param(
        "recall@20", Rule(str), "what the trials optimise, on the validation split (recall@N, mrr@N, ...)"
    )
    sampler: str = param("tpe", Rule(str, choices=SAMPLERS), "how trials are drawn")
    seed: int = param(42, Rule(int, 0), "the sampler's seed")
    n_trials: int | None = param(20, Rule(int, 1, nullable=True), "trials to finish (null: until timeout)")
    timeout: float | None = param(
        None, Rule(NUMBER, 0, low_open=True, nullable=True), "seconds after which no new trial starts"
    )
    parallelism: int | None = param(
        None, Rule(int, 1, nullable=True), "trials run at once (null: the Spark task slots)"
    )
    pruner: str = param("none", Rule(str, choices=PRUNERS), "stops bad trials after an epoch (none: off)")
    storage: str | None = param(
        None,
        Rule(str, nullable=True),
        "an Optuna database URL or a .journal file (null: SQLite <work dir>/tuning.db)",
    )
    space: str | None = param(
        None,
        Rule(str, nullable=True, source=True),
        "a search space file in the paramspaces format (null: the config's search_space section)",
    )
    experiment: str = param("spark_recs-tune", Rule(str), "the MLflow experiment of the study's runs")
    data_dir: str | None = param(
        None,
        Rule(str, nullable=True),
        "a folder the trial tasks read their data from (null: the work dir; on Databricks a Volume path)",
    )
    best_config: str | None = param(
        None, Rule(str, nullable=True), "where the best config goes (null: <work dir>/tuning/<study>.yaml)"
    )


def check_settings(settings: dict, space: SearchSpace) -> None:
    """The errors a search would meet late, raised before Spark starts."""
    direction(settings["metric"])
    check_storage(settings["storage"])
    if settings["n_trials"] is None and settings["timeout"] is None:
        raise ConfigError("tune: set tune.n_trials or tune.timeout (or both): a search needs a budget")
    if settings["sampler"] == "grid":
        space.grid()
    if on_databricks() and not settings["data_dir"]:
        raise ConfigError("tune.data_dir: on Databricks the trial tasks read their data from a Volume path")


def best_config_path(settings: dict) -> Path:
    """Where the best config is written: ``tune.best_config``, else ``<work dir>/tuning/<study>.yaml``."""
    return Path(settings["best_config"] or work_dir() / "tuning" / f"{settings['study']}.yaml")


@dataclass(frozen=True)
class Searched:
    """A finished search: the study, its parent MLflow run, the best trial's parameters (as the model
    takes them) and value, and the trials table."""

    study: optuna.Study
    run_id: str
    best_params: dict
    best_value: float
    trials: pd.DataFrame


def search(
    spark: SparkSession,
    objective: Objective,
    space: SearchSpace,
    settings: dict,
    *,
    tracking_uri: str | None = None,
    tags: dict | None = None,
) -> Searched:
    """Run (or continue) the study ``settings["study"]`` over ``space`` until it has ``n_trials`` finished
    trials or ``timeout`` seconds passed; trials run as Spark tasks, ``parallelism`` at once."""
    check_settings(settings, space)
    study = open_study(
        settings["study"],
        settings["metric"],
        sampler(settings["sampler"], settings["seed"], space),
        settings["storage"],
    )
    _check_same_space(study, space)
    budget = settings["n_trials"] if settings["n_trials"] is not None else math.inf
    if settings["sampler"] == "grid":
        budget = min(budget, math.prod(len(values) for values in space.grid().values()))
    parallelism = settings["parallelism"] or task_slots(spark)
    record = StudyRun.open(study, space, settings | {"parallelism": parallelism}, tracking_uri, tags)
    try:
        _Loop(spark, study, space, objective, settings, record, budget, parallelism).run()
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            errors = sorted({t.user_attrs["error"] for t in study.trials if t.user_attrs.get("error")})
            raise ValueError(
                f"study {study.study_name}: no trial completed"
                + (f"; errors: {errors[:3]}" if errors else "")
                + "; fix the search space or the fixed parameters (each trial's error is in its MLflow run)"
            )
    except BaseException as error:
        record.fail(error)
        raise
    best = study.best_trial
    best_params = {d.name: d.parameter(best.params[d.name]) for d in space.dimensions}
    trials = study.trials_dataframe()
    record.close(best.number, best_params, study.best_value, trials)
    return Searched(study, record.run_id, best_params, study.best_value, trials)


def _check_same_space(study: optuna.Study, space: SearchSpace) -> None:
    described = json.dumps(space.describe(), sort_keys=True)
    known = study.user_attrs.get("space")
    if known is None:
        study.set_user_attr("space", described)
    elif known != described:
        raise ConfigError(
            f"study {study.study_name!r} was searched over another space ({known}); continue it with that "
            "space, or give tune.study a new name"
        )


class _Loop:
    """The driver's threads, each running one trial at a time until the budget is spent."""

    def __init__(self, spark, study, space, objective, settings, record, budget, parallelism):
        self.spark, self.study, self.space, self.objective = spark, study, space, objective
        self.settings, self.record, self.budget, self.parallelism = settings, record, budget, parallelism
        self.pruner = pruner(settings["pruner"])
        self.threads = task_threads(spark, None)
        self.deadline = time.monotonic() + settings["timeout"] if settings["timeout"] else math.inf
        self.lock = threading.Lock()
        self.running = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        workers = [threading.Thread(target=self._work, daemon=True) for _ in range(self.parallelism)]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.5)  # a short wait, so Ctrl-C reaches the main thread
        except BaseException as error:  # Ctrl-C: no trial starts after it
            with self.lock:
                self.errors.append(error)
            raise
        if self.errors:
            raise self.errors[0]

    def _work(self) -> None:
        try:
            while (started := self._next()) is not None:
                self._finish(*started, self._run(*started))
        except BaseException as error:  # recorded, raised on the main thread; the other workers stop
            with self.lock:
                self.errors.append(error)

    def _next(self):
        with self.lock:
            full = finished(self.study) + self.running >= self.budget
            if full or self.errors or time.monotonic() > self.deadline:
                return None
            trial = self.study.ask()
            params = self.space.suggest(trial)
            pruning = self.settings["pruner"] != "none"
            done = (TrialState.COMPLETE, TrialState.PRUNED)
            history = self.study.get_trials(deepcopy=True, states=done) if pruning else []
            self.running += 1
            return trial, params, history, self.record.start_trial(trial.number, params)

    def _run(self, trial, params, history, run_id) -> TrialResult:
        task = TrialTask(
            self.objective,
            trial.number,
            params,
            self.study.direction.name.lower(),
            self.pruner,
            history,
            self.threads,
        )
        try:
            one = self.spark.range(0, 1, 1, 1).mapInPandas(run_in_task(task), RESULT_SCHEMA)
            return TrialResult.from_json(one.collect()[0]["result"])
        except Exception as error:  # the Spark job failed (a lost worker, an unpicklable objective)
            return TrialResult(trial.number, "FAIL", error=str(error).strip().splitlines()[0][:500])

    def _finish(self, trial, params, history, run_id, result: TrialResult) -> None:
        with self.lock:
            for epoch, value in sorted(result.intermediate.items()):
                trial.report(value, epoch)
            trial.set_user_attr("seconds", round(result.seconds, 3))
            trial.set_user_attr("inputs", result.inputs)
            if result.state == "COMPLETE":
                self.study.tell(trial, result.value)
            elif result.state == "PRUNED":
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                trial.set_user_attr("error", result.error)
                self.study.tell(trial, state=TrialState.FAIL)
            self.running -= 1
            self.record.finish_trial(run_id, result)
            done = finished(self.study)
            value = "" if result.value is None else f" {self.settings['metric']} {result.value:.4f}"
            best = self._best()
            print(
                f"    trial {trial.number} {result.state}{value} in {result.seconds:.1f}s "
                f"({done}/{self.budget} finished{best}) {params}"
                + (f": {result.error}" if result.error else ""),
                file=sys.stderr,
                flush=True,
            )

    def _best(self) -> str:
        try:
            return f", best {self.study.best_value:.4f} (trial {self.study.best_trial.number})"
        except ValueError:  # no complete trial yet
            return ""


def task_inputs(frames: dict[str, DataFrame], data_dir: str | None) -> tuple[dict[str, str], Path]:
    """Parquet copies of ``frames`` for the trial tasks to read, in a new folder under ``data_dir``
    (default: ``<work dir>/tuning/data``): ``(part -> path, folder)``; remove the folder afterwards."""
    folder = Path(data_dir or work_dir() / "tuning" / "data") / uuid.uuid4().hex[:12]
    paths = {}
    for part, frame in frames.items():
        paths[part] = str(folder / part)
        frame.write.mode("overwrite").parquet(paths[part])
    return paths, folder


def remove_inputs(folder: Path) -> None:
    """Remove what :func:`task_inputs` wrote."""
    shutil.rmtree(folder, ignore_errors=True)
