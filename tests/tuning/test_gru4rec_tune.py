"""`spark-recs tune` for GRU4Rec on real sessions (a subsample of rsc15_100k): trials scored on the valid
sessions only, the same values on both engines as training in-process, the best config accepted by
`spark-recs train`, --train-best tested once and registered, and a killed search resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import yaml
from conftest import shared_data
from optuna.trial import TrialState

from spark_recs.cli import main
from spark_recs.config import load_config
from spark_recs.evaluation.sessions import evaluate_sessions
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.serving.references import load_model
from spark_recs.tasks import run

ROOT = Path(__file__).resolve().parents[2]
SPACE = {
    "layers": {"dtype": "int", "values": [16, 32], "step": 16},
    "learning_rate": {"dtype": "categorical", "values": [0.05, 0.1, 0.2]},
}
MODEL = {"n_epochs": 2, "n_sample": 64, "batch_size": 16}


def prepared(folder: Path, parts=("train", "valid", "test"), sessions: int = 300) -> dict[str, pd.DataFrame]:
    """``sessions`` sessions of each of the official rsc15_100k train_tr / train_valid / test files, as
    the Parquet parts `spark-recs prepare` writes."""
    files = {"train": "train_tr", "valid": "train_valid", "test": "test"}
    frames = {}
    for part in parts:
        clicks = pd.read_csv(
            shared_data(f"sessions/rsc15_100k/yoochoose-clicks-100k_{files[part]}.txt"), sep="\t"
        )
        kept = clicks[clicks["SessionId"].isin(sorted(clicks["SessionId"].unique())[:sessions])]
        (folder / f"sessions_{part}").mkdir(parents=True)
        kept.to_parquet(folder / f"sessions_{part}" / "part-0.parquet", index=False)
        frames[part] = kept.reset_index(drop=True)
    return frames


def tune_config(tmp_path: Path, **tune) -> dict:
    config = load_config(None, [f"model.{k}={v}" for k, v in MODEL.items()])
    config["search_space"] = SPACE
    config["tune"] |= {
        "storage": f"sqlite:///{tmp_path / 'tuning.db'}",
        "best_config": str(tmp_path / "best.yaml"),
    }
    config["tune"] |= tune
    return config


def test_trials_train_on_train_score_on_valid_and_never_read_test(
    any_spark, tmp_path, mlflow_uri, one_torch_thread
):
    data = prepared(tmp_path / "prepared", parts=("train", "valid"))  # no test part at all
    config = tune_config(tmp_path, n_trials=4, parallelism=2, sampler="grid")
    tuned = run("tune", any_spark, config, str(tmp_path / "prepared"))

    study = optuna.load_study(study_name="tune", storage=config["tune"]["storage"])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    for trial in study.trials:
        assert [Path(p).name for p in trial.user_attrs["inputs"]] == ["train", "valid"]
        # The same value as training in this process on the same data: the Spark task changes nothing.
        params = {"layers": [trial.params["layers"]], "learning_rate": trial.params["learning_rate"]}
        model = GRU4Rec(**(config["model"] | params)).fit(data["train"], progress_every=None)
        expected = evaluate_sessions(model, data["valid"], cutoff=[20]).recall[20]
        assert trial.value == pytest.approx(expected, abs=1e-12)
        assert list(trial.intermediate_values) == [1, 2] and trial.intermediate_values[2] == trial.value

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("spark_recs-tune").experiment_id
    trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{tuned.run_id}'")
    assert len(trials) == 4 and {r.data.tags["state"] for r in trials} == {"COMPLETE"}
    for trial_run in trials:
        steps = client.get_metric_history(trial_run.info.run_id, "valid_recall_at_20")
        assert [m.step for m in sorted(steps, key=lambda m: m.step)] == [1, 2]
    parent = client.get_run(tuned.run_id)
    assert parent.data.tags["input"] == str(tmp_path / "prepared") and parent.data.tags["model"] == "gru4rec"
    assert not any(key.startswith("test_") for key in parent.data.metrics)

    best = load_config(tuned.best_config)
    assert best["model"]["layers"] == tuned.best_params["layers"]
    assert best["model"]["learning_rate"] == tuned.best_params["learning_rate"]
    assert best["model"]["n_epochs"] == 2 and set(yaml.safe_load(Path(tuned.best_config).read_text())) == {
        "model",
        "data",
        "data_split",
        "training",
        "evaluation",
        "paths",
        "promotion",
    }
    assert tuned.best_value == max(t.value for t in study.trials)


def test_the_best_config_trains_with_spark_recs_train(spark, tmp_path, mlflow_uri, one_torch_thread, capsys):
    prepared(tmp_path / "prepared", parts=("train", "valid"))
    config = tune_config(tmp_path, n_trials=2, parallelism=1)
    tuned = run("tune", spark, config, str(tmp_path / "prepared"))
    model = tmp_path / "best.pt"
    argv = ["train", "--config", tuned.best_config, "--input", str(tmp_path / "prepared")]
    assert main([*argv, "--set", f"paths.model_save={model}", "--register-as", ""]) == 0
    assert GRU4Rec.load(model).layers == tuned.best_params["layers"]


def test_train_best_fits_train_and_valid_tests_once_and_registers(
    spark, tmp_path, mlflow_uri, one_torch_thread, capsys
):
    data = prepared(tmp_path / "prepared")
    config_file = tmp_path / "tune.yaml"
    config_file.write_text(
        yaml.safe_dump({k: v for k, v in tune_config(tmp_path, n_trials=3).items() if k != "kind"})
    )
    argv = ["tune", "--config", str(config_file), "--input", str(tmp_path / "prepared"), "--train-best"]
    assert main([*argv, "--register-as", "tuned-gru4rec", "--alias", "best"]) == 0
    out = capsys.readouterr().out
    assert "best valid recall@20 = " in out and "test recall@20 = " in out

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("tuned-gru4rec", "best")
    trained = load_model("models:/tuned-gru4rec@best")
    items = set(pd.concat([data["train"], data["valid"]])["ItemId"])
    assert set(trained.item_ids.tolist()) == items  # fitted on train + valid
    fit = client.get_run(version.run_id)
    assert fit.data.tags["fit_on"] == "train+valid"
    parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'tune'").iloc[0]
    test_recall = float(out.split("test recall@20 = ")[1].split(",")[0])
    assert parent["metrics.test_recall_at_20"] == pytest.approx(test_recall, abs=5e-5)
    assert (
        parent["tags.spark_recs.engine"] == "classic"
        and parent["tags.spark_recs.storage_format"] == "parquet"
    )


@pytest.mark.slow
def test_a_killed_search_continues_with_the_budget_and_no_repeated_trial(
    spark, tmp_path, mlflow_uri, one_torch_thread
):
    """`spark-recs tune` killed (SIGKILL, the JVM with it) while a trial runs, then run again: the grid's
    six points are each complete once, the interrupted trial failed and retried, its MLflow run KILLED."""
    prepared(tmp_path / "prepared", parts=("train", "valid"))
    config = tune_config(tmp_path, n_trials=6, parallelism=1, sampler="grid")
    config_file = tmp_path / "tune.yaml"
    config_file.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "kind"}))
    env = os.environ | {"SPARK_RECS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "spark_recs.cli", "tune", "--config", str(config_file)]
    process = subprocess.Popen(
        [*command, "--input", str(tmp_path / "prepared")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    storage = config["tune"]["storage"]

    def running_run() -> bool:
        found = mlflow.search_runs(search_all_experiments=True, filter_string="attributes.status = 'RUNNING'")
        return bool(len(found)) and found["tags.trial"].notna().any()

    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            try:
                states = [t.state for t in optuna.load_study(study_name="tune", storage=storage).trials]
            except KeyError:  # the study is not created yet
                states = []
            if states.count(TrialState.COMPLETE) >= 2 and TrialState.RUNNING in states and running_run():
                break  # killed with a trial running, its MLflow run started
            time.sleep(0.05)
        else:
            pytest.fail("the search finished or stalled before it could be killed mid-trial")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed = [
        t.number
        for t in optuna.load_study(study_name="tune", storage=storage).trials
        if t.state == TrialState.RUNNING
    ]
    assert len(killed) == 1

    tuned = run("tune", spark, config, str(tmp_path / "prepared"))

    trials = optuna.load_study(study_name="tune", storage=storage).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({(t.params["layers"], t.params["learning_rate"]) for t in complete}) == 6
    interrupted = trials[killed[0]]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["interrupted"] is True
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == killed[0])
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted.params
    client = mlflow.MlflowClient()
    experiment = client.get_run(tuned.run_id).info.experiment_id
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{tuned.run_id}'")
    status = {}
    for trial_run in runs:
        status.setdefault(int(trial_run.data.tags["trial"]), []).append(trial_run.info.status)
    assert status[killed[0]] == ["KILLED"]
    assert (
        sorted(s for number, found in status.items() if number != killed[0] for s in found)
        == ["FINISHED"] * 6
    )
