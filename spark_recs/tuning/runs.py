"""A study's MLflow runs: one parent run per study (kept across resumed searches), one nested run per trial.

Written through ``MlflowClient`` (not the active-run stack), as trials finish on the driver's threads.
The parent holds the search space, the sampler and budget, and at the end the best parameters and value,
the trials table (``trials.csv``) and the optimisation history (``optimization_history.png``); a trial's
run holds its parameters, its metrics after every epoch (MLflow step = epoch), its state (``COMPLETE``,
``PRUNED``, ``FAILED`` with the error) and its value.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pandas as pd
from mlflow.entities import Metric, Param

from spark_recs.runtime import configure_mlflow
from spark_recs.tracking import ensure_experiment, is_live_run, kill_stale_children, mlflow_key, run_tags

from .space import SearchSpace
from .study import direction
from .trials import TrialResult

#: The parent run's id, kept in the study so that a resumed search logs to the same run.
RUN_ATTR = "mlflow_run"
SETTINGS = ("metric", "sampler", "seed", "n_trials", "timeout", "pruner")


class StudyRun:
    """The parent run of a study and the nested runs of its trials."""

    def __init__(self, client: mlflow.MlflowClient, run_id: str, study: str, metric: str):
        self.client, self.run_id, self.study, self.metric = client, run_id, study, metric
        self.experiment_id = client.get_run(run_id).info.experiment_id
        self.value_key = mlflow_key(f"valid_{metric}")

    @classmethod
    def open(
        cls,
        study: optuna.Study,
        space: SearchSpace,
        settings: dict,
        tracking_uri: str | None,
        tags: dict | None,
    ) -> StudyRun:
        """The study's parent run, created on its first search and running again on a resumed one (the
        trial runs a killed search left running are ended as ``KILLED``)."""
        configure_mlflow(tracking_uri)
        client = mlflow.MlflowClient()
        run_id = study.user_attrs.get(RUN_ATTR)
        if is_live_run(client, run_id):
            client.update_run(run_id, status="RUNNING")
            kill_stale_children(run_id, "study", [study.study_name], time.time())
        else:
            experiment_id = ensure_experiment(settings["experiment"])
            labels = run_tags() | {"study": study.study_name, "kind": "tune", **(tags or {})}
            run = client.create_run(experiment_id, run_name=f"tune-{study.study_name}", tags=labels)
            run_id = run.info.run_id
            study.set_user_attr(RUN_ATTR, run_id)
            params = {k: settings[k] for k in SETTINGS} | {
                f"space.{d['name']}": {k: v for k, v in d.items() if k != "name"} for d in space.describe()
            }
            client.log_batch(run_id, params=[Param(mlflow_key(k), str(v)) for k, v in params.items()])
            client.log_dict(run_id, space.describe(), "search_space.json")
        client.set_tag(run_id, "parallelism", str(settings["parallelism"]))
        return cls(client, run_id, study.study_name, settings["metric"])

    def start_trial(self, number: int, params: dict) -> str:
        """A running nested run for trial ``number`` with its parameters."""
        tags = {"mlflow.parentRunId": self.run_id, "study": self.study, "trial": str(number)}
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number}", tags=tags)
        self.client.log_batch(
            run.info.run_id, params=[Param(mlflow_key(k), str(v)) for k, v in params.items()]
        )
        return run.info.run_id

    def finish_trial(self, run_id: str, result: TrialResult) -> None:
        """Log what the trial did and end its run (``FAILED`` when it failed)."""
        now = int(time.time() * 1000)
        metrics = [
            Metric(mlflow_key(key), float(value), now, record["epoch"])
            for record in result.epochs
            for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float))
        ]
        last = max(result.intermediate, default=0)
        if result.value is not None and not result.intermediate:
            metrics.append(Metric(self.value_key, result.value, now, last))
        metrics.append(Metric("trial_seconds", result.seconds, now, 0))
        self.client.log_batch(run_id, metrics=metrics)
        self.client.set_tag(run_id, "state", result.state)
        if result.error:
            self.client.set_tag(run_id, "error", result.error[:5000])
        if result.traceback:
            self.client.log_text(run_id, result.traceback, "traceback.txt")
        self.client.set_terminated(run_id, "FAILED" if result.state == "FAIL" else "FINISHED")

    def close(self, best_trial: int, best_params: dict, best_value: float, trials: pd.DataFrame) -> None:
        """The best trial, the trials table and the optimisation history; the parent run ends."""
        self.client.set_tag(self.run_id, "best_trial", str(best_trial))
        for name, value in best_params.items():
            self.client.set_tag(self.run_id, f"best.{name}", str(value))
        self.client.log_metric(self.run_id, mlflow_key(f"best_{self.metric}"), best_value)
        self.client.log_dict(self.run_id, best_params, "best_params.json")
        with tempfile.TemporaryDirectory(prefix="spark_recs_tune_") as scratch:
            table = Path(scratch) / "trials.csv"
            trials.to_csv(table, index=False)
            self.client.log_artifact(self.run_id, str(table))
        self.client.log_figure(self.run_id, history_figure(trials, self.metric), "optimization_history.png")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: BaseException) -> None:
        """End the parent run as ``FAILED`` (``KILLED`` for Ctrl-C) with the error."""
        self.client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
        self.client.set_terminated(
            self.run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        )


def history_figure(trials: pd.DataFrame, metric: str):
    """The value of every finished trial by trial number, with the best so far as a line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        shown = trials[trials["state"] == state]
        axes.scatter(shown["number"], shown["value"], marker=marker, label=state.lower())
    complete = trials[trials["state"] == "COMPLETE"].sort_values("number")
    if len(complete):
        values = complete["value"]
        best = values.cummax() if direction(metric) == "maximize" else values.cummin()
        axes.step(complete["number"], best, where="post", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"validation {metric}")
    axes.legend()
    return figure
