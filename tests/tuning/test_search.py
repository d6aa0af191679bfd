"""Searches fanned out over Spark (classic and Spark Connect): one Spark task per trial, the study told each
result, pruning inside the task, failures recorded, one nested MLflow run per trial, reproducible."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import mlflow
import numpy as np
import pytest
from optuna.trial import TrialState
from pyspark import cloudpickle

from spark_recs.core.params import NUMBER, ConfigError, Rule, declarations, param
from spark_recs.runtime import is_connect, task_slots
from spark_recs.tuning import search_space
from spark_recs.tuning.search import SearchParams, search

# The objectives below are shipped to the Python workers by value (they cannot import this test module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class RampParams:
    x: float = param(0.5, Rule(NUMBER, 0, 1), "the slope")
    bonus: int = param(0, Rule(int, 0, 10), "added once")


@dataclass(frozen=True)
class Ramp:
    """Reports ``x * epoch`` after each epoch and returns the last; refuses ``x == fail_at``."""

    epochs: int = 3
    fail_at: float | None = None
    inputs: tuple = ("ramp-data",)

    def __call__(self, params: dict, report) -> float:
        if params["x"] == self.fail_at:
            raise ValueError(f"x = {self.fail_at} is refused")
        for epoch in range(1, self.epochs + 1):
            report(epoch, params["x"] * epoch, {"valid_score": params["x"] * epoch, "pid": os.getpid()})
        return params["x"] * self.epochs + params.get("bonus", 0)


SPACE = {"x": {"dtype": "float", "values": [0.1, 1.0], "step": 0.1}}


def settings(tmp_path, **changes) -> dict:
    defaults = {name: p.default for name, p in declarations(SearchParams).items()}
    return defaults | {"storage": f"sqlite:///{tmp_path / 'tuning.db'}", "metric": "recall@10"} | changes


def nested_runs(parent_id: str) -> list:
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent_id).info.experiment_id
    found = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)
    return sorted(found, key=lambda run: int(run.data.tags["trial"]))


def test_each_trial_is_a_spark_task_told_to_the_study_and_logged_as_a_nested_run(
    any_spark, tmp_path, mlflow_uri
):
    space = search_space(SPACE, RampParams)
    found = search(any_spark, Ramp(), space, settings(tmp_path, n_trials=5, parallelism=2, sampler="random"))

    trials = found.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    for trial in trials:  # the value, and every epoch's report, are those of the objective
        x = trial.params["x"]
        assert trial.value == pytest.approx(3 * x)
        assert trial.intermediate_values == pytest.approx({1: x, 2: 2 * x, 3: 3 * x})
        assert trial.user_attrs["inputs"] == ["ramp-data"]
    assert found.best_value == max(t.value for t in trials)
    # The best value of a stepped float is the grid's number (0.3, not 0.30000000000000004).
    assert found.best_params == {"x": round(found.study.best_params["x"], 12)}
    assert found.best_params["x"] in {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}

    runs = nested_runs(found.run_id)
    client = mlflow.MlflowClient()
    assert len(runs) == 5
    for run, trial in zip(runs, trials):
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        assert float(run.data.params["x"]) == trial.params["x"]
        history = client.get_metric_history(run.info.run_id, "valid_score")
        assert {m.step: m.value for m in history} == pytest.approx(trial.intermediate_values)
    if not is_connect(any_spark):  # the trials ran in Spark's Python workers, not in the driver
        assert os.getpid() not in {client.get_metric_history(r.info.run_id, "pid")[0].value for r in runs}
    parent = client.get_run(found.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["metric"] == "recall@10" and parent.data.params["sampler"] == "random"
    assert parent.data.tags["best.x"] == str(found.best_params["x"])
    assert parent.data.metrics["best_recall_at_10"] == pytest.approx(found.best_value)
    artifacts = {a.path for a in client.list_artifacts(found.run_id)}
    assert {"trials.csv", "optimization_history.png", "best_params.json", "search_space.json"} <= artifacts


def test_same_seed_sequential_search_same_trials_and_best_value(spark, tmp_path, mlflow_uri):
    space = search_space(SPACE | {"bonus": {"dtype": "int", "values": [0, 3]}}, RampParams)

    def run(name):
        chosen = settings(tmp_path, study=name, n_trials=6, parallelism=1, seed=3)
        found = search(spark, Ramp(epochs=1), space, chosen)
        return [(t.params, t.value) for t in found.study.trials], found.best_value

    assert run("first") == run("second")


def test_a_failing_trial_is_recorded_and_the_search_goes_on(spark, tmp_path, mlflow_uri):
    space = search_space(SPACE, RampParams)
    chosen = settings(tmp_path, n_trials=10, parallelism=2, sampler="grid")
    found = search(spark, Ramp(epochs=1, fail_at=0.3), space, chosen)

    states = {round(t.params["x"], 1): t.state for t in found.study.trials}
    assert states == {round(0.1 * i, 1): TrialState.COMPLETE for i in range(1, 11)} | {0.3: TrialState.FAIL}
    failed = next(t for t in found.study.trials if t.state == TrialState.FAIL)
    assert failed.user_attrs["error"] == "ValueError: x = 0.3 is refused"
    run = next(r for r in nested_runs(found.run_id) if r.data.tags["trial"] == str(failed.number))
    assert run.info.status == "FAILED" and run.data.tags["error"] == "ValueError: x = 0.3 is refused"
    assert "traceback.txt" in {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}


def test_a_search_where_every_trial_fails_is_an_error_and_a_failed_run(spark, tmp_path, mlflow_uri):
    space = search_space({"x": {"dtype": "categorical", "values": [0.5]}}, RampParams)
    with pytest.raises(ValueError, match=r"no trial completed; errors: \['ValueError: x = 0.5 is refused'\]"):
        search(spark, Ramp(fail_at=0.5), space, settings(tmp_path, n_trials=2, parallelism=1))
    parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'tune'").iloc[0]
    assert parent["status"] == "FAILED"


def test_the_median_pruner_stops_trials_worse_than_the_median_inside_their_task(spark, tmp_path, mlflow_uri):
    """Sequential, in a fixed grid order: once five trials are complete, a trial whose value after an
    epoch (from the second) is below the median of the complete trials' values there stops."""
    space = search_space(SPACE, RampParams)
    chosen = settings(tmp_path, n_trials=10, parallelism=1, sampler="grid", pruner="median", seed=5)
    found = search(spark, Ramp(), space, chosen)

    trials = found.study.trials
    for trial in trials:
        complete = [t for t in trials if t.number < trial.number and t.state == TrialState.COMPLETE]
        stopped_at = None
        for epoch in (2, 3) if len(complete) >= 5 else ():
            median = np.percentile([t.intermediate_values[epoch] for t in complete], 50)
            if trial.intermediate_values[epoch] < median:
                stopped_at = epoch
                break
        assert (trial.state == TrialState.PRUNED) == (stopped_at is not None), trial
        assert list(trial.intermediate_values) == list(range(1, (stopped_at or 3) + 1))
    pruned = {str(t.number) for t in trials if t.state == TrialState.PRUNED}
    assert pruned, "the grid order puts trials below the median after the first five"
    states = {r.data.tags["trial"]: r.data.tags["state"] for r in nested_runs(found.run_id)}
    assert {states[number] for number in pruned} == {"PRUNED"}


def test_a_study_continued_over_another_space_is_refused(spark, tmp_path, mlflow_uri):
    search(spark, Ramp(epochs=1), search_space(SPACE, RampParams), settings(tmp_path, n_trials=1))
    other = search_space({"x": {"dtype": "float", "values": [0.2, 0.4], "step": 0.1}}, RampParams)
    with pytest.raises(ConfigError, match="study 'tune' was searched over another space"):
        search(spark, Ramp(epochs=1), other, settings(tmp_path, n_trials=2))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_trials": None}, "set tune.n_trials or tune.timeout"),
        ({"metric": "auc"}, "cannot optimise 'auc'"),
        ({"storage": "tuning.db"}, "tune.storage must be a database URL"),
    ],
)
def test_settings_a_search_cannot_use_are_refused_before_it_starts(spark, tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        search(spark, Ramp(), search_space(SPACE, RampParams), settings(tmp_path, **changes))
    assert not (tmp_path / "tuning.db").exists()


def test_the_default_parallelism_is_the_local_masters_cores(spark):
    assert spark.sparkContext.master == "local[*]"
    assert task_slots(spark) == os.cpu_count()
