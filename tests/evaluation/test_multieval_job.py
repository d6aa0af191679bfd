"""MultiEval fanned out over job tasks: plan, slices of the runs, collect; in process on both engines, and as
the bundle's job run on this machine (``spark-recs job``), each task in its own process."""

from __future__ import annotations

import itertools
import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import shared_data
from test_cli import _error_line

from spark_recs import tasks
from spark_recs.cli import main
from spark_recs.config import ConfigError, load_config
from spark_recs.data.io import read_table
from spark_recs.evaluation.multieval.plan import run_ids
from spark_recs.tasks.multieval import check_folder, evaluation_of

EXPERIMENT = "multieval-job"
COMPARED = ["RunId", "DataSet", "Partition", "AlgoStr", "status"]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """A two-fold, two-algorithm MultiEval of 120 users of ml-latest-small (4 runs), a MovieLens folder
    (ratings and movies) so the runs' diversity comes from the genres."""
    folder = tmp_path_factory.mktemp("multieval-job")
    ratings = pd.read_csv(shared_data("ml-latest-small/ratings.csv"))
    ratings[ratings["userId"] <= 120].to_csv(folder / "ratings.csv", index=False)
    (folder / "movies.csv").write_bytes(shared_data("ml-latest-small/movies.csv").read_bytes())
    config = {
        "kind": "multieval",
        "data": {"ratings": str(folder), "name": "small"},
        "split": {"partitions": 2, "holdout": 5, "seed": 3},
        "algorithms": [{"class": "Popular"}, {"class": "Bias", "params": {"damping": 5.0}}],
        "evaluation": {"recommend": 10, "experiment": EXPERIMENT},
    }
    (folder / "multieval.yaml").write_text(yaml.safe_dump(config))
    return folder / "multieval.yaml"


def _config(file, folder, *more: str) -> dict:
    return load_config(file, [f"evaluation.path={folder}", *more], schema="multieval")


def _metrics(table: pd.DataFrame) -> pd.DataFrame:
    columns = COMPARED + [c for c in table.columns if "@" in c or c in ("ndcg", "recip_rank", "rmse", "mae")]
    return table[columns].sort_values("RunId").reset_index(drop=True)


@pytest.fixture(scope="module")
def one_call_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("one-call")


@pytest.fixture(scope="module")
def one_call(spark, config_file, one_call_folder):
    """The runs table of the config run in one ``multieval`` call on classic Spark."""
    folder = one_call_folder
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        results = tasks.run("multieval", spark, _config(config_file, folder / "eval"))
    assert len(results) == 4 and (results["status"] == "ok").all()
    return results


def _children(parent_id: str) -> list:
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")


def test_a_fanned_out_multieval_gives_the_runs_of_one_call(
    any_spark, config_file, one_call, mlflow_uri, tmp_path
):
    folder = tmp_path / "eval"
    config = _config(config_file, folder, f"evaluation.results_table={tmp_path / 'results'}")

    planned = tasks.run("plan", any_spark, config)
    assert planned[["RunId", "Partition", "AlgoStr", "done"]].to_dict("list") == {
        "RunId": [1, 2, 3, 4],
        "Partition": [1, 1, 2, 2],
        "AlgoStr": ["Popular", "Bias", "Popular", "Bias"],
        "done": [False] * 4,
    }
    parent = (folder / "mlflow_parent_run.txt").read_text().strip()  # created before the fan-out
    slices = [tasks.run("multieval", any_spark, config, runs=f"{k}/3") for k in (1, 2, 3)]
    assert [s["RunId"].tolist() for s in slices] == [[1], [2], [3, 4]]
    assert not (folder / "runs.csv").exists() and not (folder / "plots").exists()  # left to collect

    collected = tasks.run("collect", any_spark, config)
    pd.testing.assert_frame_equal(_metrics(collected), _metrics(one_call))
    written = read_table(any_spark, str(tmp_path / "results")).toPandas()
    pd.testing.assert_frame_equal(_metrics(written), _metrics(collected), check_dtype=False)
    assert pd.read_csv(folder / "runs.csv")["RunId"].tolist() == [1, 2, 3, 4]
    children = _children(parent)
    assert sorted(int(r.data.tags["RunId"]) for r in children) == [1, 2, 3, 4]
    assert {r.info.status for r in children} == {"FINISHED"}
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent)}
    assert {"runs.csv", "plots"} <= logged

    # A rerun of a slice (a retried job task) skips its recorded runs.
    records = {p.name: p.stat().st_mtime_ns for p in (folder / "runs").glob("*.json")}
    again = tasks.run("multieval", any_spark, config, runs="3/3")
    assert again["RunId"].tolist() == [3, 4] and (again["status"] == "ok").all()
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "runs").glob("*.json")} == records
    assert len(_children(parent)) == 4
    assert tasks.run("plan", any_spark, config)["done"].all()


def test_each_run_has_the_mean_genre_distance_within_its_lists(spark, config_file, one_call, one_call_folder):
    """diversity@10 recomputed from each run's written lists: per list, the mean over item pairs of one minus
    the cosine of their genre sets (|A & B| / sqrt(|A| |B|)), movies without a genre left out."""
    movies = pd.read_csv(config_file.parent / "movies.csv")
    genres = {m: set(g.split("|")) for m, g in zip(movies["movieId"], movies["genres"])}
    genres = {m: g for m, g in genres.items() if g != {"(no genres listed)"}}
    config = _config(config_file, one_call_folder / "eval")
    recs = evaluation_of(spark, config).recommendations().toPandas()
    for run_id, lists in recs[recs["rank"] <= 10].groupby("RunId"):
        per_list = []
        for _, rows in lists.groupby("user"):
            pairs = list(itertools.combinations([genres[i] for i in rows["item"] if i in genres], 2))
            if pairs:  # a list with under two movies with genres is left out
                per_list.append(np.mean([1 - len(a & b) / math.sqrt(len(a) * len(b)) for a, b in pairs]))
        found = one_call.set_index("RunId").loc[run_id, "diversity@10"]
        assert found == pytest.approx(np.mean(per_list), abs=1e-12) and 0 < found < 1


def test_collect_names_the_planned_runs_nothing_ran(spark, config_file, mlflow_uri, tmp_path, capsys):
    argv = ["--config", str(config_file), "--set", f"evaluation.path={tmp_path / 'eval'}"]
    assert main(["multieval", *argv, "--plan"]) == 0
    assert "4 runs planned in" in capsys.readouterr().out
    assert main(["multieval", *argv, "--runs", "2"]) == 0
    assert main(["multieval", *argv, "--collect"]) == 1
    out = capsys.readouterr().out
    assert "RunId 1 (Popular, partition 1): not run" in out and "RunId 4 (Bias, partition 2): not run" in out
    assert "RunId 2 (" not in out


def test_a_bad_selection_is_refused_before_spark_starts(config_file, capsys):
    argv = ["multieval", "--config", str(config_file), "--remote", "sc://nowhere:1"]
    assert main([*argv, "--runs", "2of4"]) == 2
    assert "runs: '2of4' is not a RunId (3), a range (1-4) or a slice (2/4)" in _error_line(capsys)
    assert main([*argv, "--runs", "5/4"]) == 2
    assert "runs: slice '5/4' needs 1 <= k <= n" in _error_line(capsys)


def test_genres_without_a_movielens_folder_are_refused_before_spark_starts(config_file, capsys):
    ratings = config_file.parent / "ratings.csv"
    argv = ["multieval", "--config", str(config_file), "--remote", "sc://nowhere:1"]
    assert main([*argv, "--set", f"data.ratings={ratings}", "--set", "data.genres=true"]) == 2
    assert f"data.genres: {ratings} is not a MovieLens folder with its movies file" in _error_line(capsys)


def test_a_folder_keeps_the_config_its_runs_were_planned_with(config_file, tmp_path):
    check_folder(_config(config_file, tmp_path), str(tmp_path))
    check_folder(_config(config_file, tmp_path, "evaluation.experiment=other"), str(tmp_path))  # not a run's
    changed = _config(config_file, tmp_path, "split.seed=4")
    changed["algorithms"] = changed["algorithms"][:1]
    with pytest.raises(ConfigError, match=r"holds the runs of a config with other split\.seed, algorithms"):
        check_folder(changed, str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["split"]["seed"] == 3


@pytest.mark.parametrize("count", [0, 1, 4, 7, 30])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_the_slices_of_a_plan_cover_every_run_once_in_contiguous_near_equal_parts(count, n):
    parts = [sorted(run_ids(f"{k}/{n}", count)) for k in range(1, n + 1)]
    assert [i for part in parts for i in part] == list(range(1, count + 1))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert all(part == list(range(part[0], part[-1] + 1)) for part in parts if part)


def test_a_selection_joins_ids_ranges_and_slices():
    assert run_ids(["3", "5-7,1"], 10) == {1, 3, 5, 6, 7}
    assert run_ids([2, "4/4"], 10) == {2, 8, 9, 10}
    assert run_ids(4, 10) == {4}


def test_the_bundle_job_runs_on_this_machine_as_on_databricks(
    spark, config_file, one_call, mlflow_uri, tmp_path, capsys
):
    """`spark-recs job spark_recs_multieval`: plan, the four slice tasks (two at a time), collect, each its
    own process running the bundle's entry point with the bundle's parameters."""
    folder = tmp_path / "eval"
    params = {"config": config_file, "ratings": config_file.parent, "path": folder}
    params["results_table"] = tmp_path / "results"
    argv = [item for name, value in params.items() for item in ("--param", f"{name}={value}")]
    assert main(["job", "spark_recs_multieval", *argv, "--concurrency", "2"]) == 0
    err = capsys.readouterr().err
    for label in ("plan", "runs-1 (input 1/4)", "runs-4 (input 4/4)", "collect"):
        assert f"task {label}: started" in err
    assert "job spark_recs_multieval: every task succeeded" in err
    pd.testing.assert_frame_equal(_metrics(pd.read_csv(folder / "runs.csv")), _metrics(one_call))
    written = read_table(spark, str(tmp_path / "results")).toPandas()
    pd.testing.assert_frame_equal(_metrics(written), _metrics(one_call), check_dtype=False)
    parent = (folder / "mlflow_parent_run.txt").read_text().strip()
    experiment = mlflow.MlflowClient().get_experiment(
        mlflow.MlflowClient().get_run(parent).info.experiment_id
    )
    assert experiment.name.endswith("/spark_recs-dev")  # the bundle's experiment resource
    assert sorted(int(r.data.tags["RunId"]) for r in _children(parent)) == [1, 2, 3, 4]
