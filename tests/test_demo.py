"""The main job end to end through the CLI, on a real local Spark and a real MLflow store."""

import mlflow
import pandas as pd
import pytest

from spark_recs.cli import main
from spark_recs.tasks.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end_and_tracks_the_run(spark, mlflow_uri, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--events", "30000", "--items", "300", "--output", str(out), "--tracking-uri", mlflow_uri]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "recall@20" in printed and f"mlflow ui --backend-store-uri {mlflow_uri}" in printed

    runs = mlflow.search_runs(experiment_names=["spark_recs-demo"])
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["metrics.rows_in"] == 30000
    assert run["metrics.rows_in"] == run["metrics.rows_accepted"] + run["metrics.rows_rejected"]
    assert 0 < run["metrics.mrr_at_20"] <= run["metrics.recall_at_20"] <= 1
    assert run["params.model"] == "Popular"
    # The run spans the job: it holds every step's duration, and lasts at least as long as they do.
    steps = ["load", "split", "index", "train", "recommend", "evaluate", "log"]
    seconds = [run[f"metrics.{step}_seconds"] for step in steps]
    assert all(s > 0 for s in seconds)
    assert (run["end_time"] - run["start_time"]).total_seconds() >= sum(seconds)
    assert run["tags.spark_recs.engine"] == "classic" and run["tags.spark_recs.storage_format"] == "parquet"
    assert run["tags.data.input"].startswith("synthetic(n_events=30000")
    assert run["tags.data.output"] == str(out)

    recs = pd.read_parquet(out / "recommendations")
    assert set(recs.columns) == {"SessionId", "position", "rank", "item", "score"}
    assert recs.groupby(["SessionId", "position"])["rank"].max().eq(20).all()


def test_demo_reports_a_missing_column_in_one_line(spark, tmp_path, capsys):
    path = tmp_path / "clicks.tsv"
    path.write_text("Session\tItemId\tTime\n1\t2\t3.0\n")
    code = main(["demo", "--sessions", str(path), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and errors[0] == err[-1]
    assert "'SessionId'" in errors[0] and "columns found: ['Session', 'ItemId', 'Time']" in errors[0]


@pytest.mark.slow
def test_demo_gives_the_same_numbers_on_classic_and_connect_run_after_run(
    spark, connect_spark, mlflow_uri, tmp_path, monkeypatch
):
    def demo(session, name: str) -> dict:
        config = DemoConfig(
            n_events=20_000, n_items=200, output=str(tmp_path / name), tracking_uri=mlflow_uri
        )
        result = run_demo(session, config)
        return {"metrics": result.metrics, "counts": result.counts}

    on_connect = [demo(connect_spark, "connect-1"), demo(connect_spark, "connect-2")]
    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED")
    on_classic = demo(spark, "classic")
    assert on_connect[0] == on_connect[1] == on_classic
    # Every test event but the last of its session is a target; each test session has at least 2 events.
    counts, metrics = on_classic["counts"], on_classic["metrics"]
    assert 0 < metrics["n_targets"] <= counts["test"] - 1
    assert 0 < metrics["mrr@20"] <= metrics["recall@20"] < 1


def test_demo_config_checks_its_fields_against_the_declaration():
    from spark_recs.config import defaults

    config, schema = DemoConfig(), defaults("demo")
    assert (config.n_events, config.n_items, config.seed, config.test_days) == (200_000, 2_000, 0, 1.0)
    assert schema["data"]["n_events"] == config.n_events and schema["evaluation"]["n"] == config.n
    assert DemoConfig().cutoffs is not DemoConfig().cutoffs  # a fresh list per config
    with pytest.raises(ValueError, match=r"^DemoConfig parameter n_items = 1 is out of range \[2, inf\)$"):
        DemoConfig(n_items=1)
    with pytest.raises(ValueError, match="DemoConfig parameter cutoffs must be a non-empty list"):
        DemoConfig(cutoffs=[])
