"""The main job end to end through the CLI, on a real local Spark and a real MLflow store."""

import mlflow
import pandas as pd
import pytest

from spark_recs.cli import main


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
