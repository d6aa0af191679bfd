"""The spark-submit entry points in jobs/: thin wrappers over the CLI, and one run through the real spark-submit."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]
JOBS = ["prepare", "train", "evaluate", "tune", "promote", "recommend", "multieval"]


@pytest.mark.parametrize("step", JOBS)
def test_each_job_runs_its_cli_step(step, monkeypatch, capsys):
    job = ROOT / "jobs" / f"{step}.py"
    monkeypatch.syspath_prepend(str(job.parent))  # as spark-submit runs a script: its folder first
    monkeypatch.setattr(sys, "argv", [str(job), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(job), run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: spark-recs {step} ")
    assert f"spark-submit jobs/{step}.py" in job.read_text()  # the docstring shows how to run it


def test_a_python_without_the_package_gets_a_one_line_hint():
    """spark-submit runs jobs with $PYSPARK_PYTHON or the first python3 on the PATH, often not the venv's."""
    done = subprocess.run(
        [sys.executable, "-S", "jobs/train.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"spark-submit jobs/train.py: error: spark_recs is not installed in {sys.executable}, the Python "
        "spark-submit runs; activate the virtual environment (. .venv/bin/activate) or set "
        "PYSPARK_PYTHON=$PWD/.venv/bin/python"
    ]


@pytest.mark.slow
def test_spark_submit_works_in_the_activated_environment(work_dir):
    """With the venv's bin first on the PATH (what activating does) spark-submit needs no PYSPARK_PYTHON."""
    spark_submit = Path(sys.executable).with_name("spark-submit")
    if not spark_submit.exists():
        pytest.skip(f"{spark_submit} not found (pyspark installs it in the environment's bin folder)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_") and k != "SPARK_HOME"}
    env["PATH"] = f"{spark_submit.parent}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["spark-submit", "jobs/prepare.py", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: spark-recs prepare" in done.stdout


def _prepared_rsc15(folder: Path) -> pd.DataFrame:
    """A prepared folder as `spark-recs prepare` writes it (Parquet sessions_train / sessions_valid), made
    with pandas from the rsc15 test sessions: the last-ending 10% of sessions are the valid part."""
    clicks = pd.read_csv(shared_data("sessions/rsc15_100k/yoochoose-clicks-100k_test.txt"), sep="\t")
    ends = clicks.groupby("SessionId")["Time"].max().sort_values(kind="stable")
    valid = clicks["SessionId"].isin(ends.index[-len(ends) // 10 :])
    for part, rows in (("train", clicks[~valid]), ("valid", clicks[valid])):
        (folder / f"sessions_{part}").mkdir(parents=True)
        rows.to_parquet(folder / f"sessions_{part}" / "part-0.parquet", index=False)
    return clicks[~valid]


@pytest.mark.slow
def test_train_job_through_spark_submit(tmp_path, work_dir):
    from spark_recs.models.gru4rec import GRU4Rec

    spark_submit = Path(sys.executable).with_name("spark-submit")
    if not spark_submit.exists():
        pytest.skip(f"{spark_submit} not found (pyspark installs it in the environment's bin folder)")
    train = _prepared_rsc15(tmp_path / "prepared")
    model, uri = tmp_path / "gru.pt", f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        str(spark_submit),
        "jobs/train.py",
        "--config",
        "conf/example.yaml",
        "--input",
        str(tmp_path / "prepared"),
    ]
    command += ["--set", "model.layers=[16]", "--set", "model.n_epochs=2", "--set", "model.n_sample=0"]
    command += ["--set", f"paths.model_save={model}", "--register-as", "job-gru4rec", "--tracking-uri", uri]
    env = os.environ | {
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_RECS_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # spark-submit's PythonRunner merges the driver's stderr (progress lines) into its stdout.
    assert "epoch 2/2: loss" in done.stdout and "model: models:/job-gru4rec@challenger" in done.stdout

    trained = GRU4Rec.load(model)
    assert trained.layers == [16] and set(trained.item_ids.tolist()) == set(train["ItemId"])
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("job-gru4rec", "challenger")
    assert [m.step for m in client.get_metric_history(version.run_id, "valid_recall_at_20")] == [1, 2]
