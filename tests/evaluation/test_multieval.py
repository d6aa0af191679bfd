"""MultiEval over classic Spark with a real MLflow store, on ~150 users of ml-latest-small.

One evaluation (a 2-fold ``partition_users`` split whose fold 1 also tests a user unknown to training;
Popular, Bias, BiasedMF and an algorithm whose fit raises) is run once for the module: first only RunId 2,
then everything. The tests read its runs table, records, outputs and MLflow runs; the last of them damages
the folder like a killed job would and runs it again. A second evaluation persists its data and is then
run from the persisted splits by a fresh instance, as a fan-out job would.
"""

import json
import os
import re
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.data.split import SampleN, TTPair, partition_users
from spark_recs.evaluation import MultiEval
from spark_recs.evaluation.accuracy import RecListAnalysis, prediction_metrics
from spark_recs.evaluation.beyond import beyond_accuracy
from spark_recs.evaluation.multieval.runner import BEYOND_COLUMNS
from spark_recs.models.base import Model, Recommender
from spark_recs.models.bias import Bias
from spark_recs.models.mf import BiasedMF
from spark_recs.models.popular import Popular
from spark_recs.runtime import cached
from spark_recs.serving.references import load_model

EXPERIMENT = "multieval-test"
N = 30  # list length
FRESH = 10_000_001  # a test user unknown to training
TOPN = ["ndcg", "ndcg@10", "precision@10", "recall@10", "recip_rank", "hit@10"]
# RunIds: data sets (and partitions) outer, algorithms inner.
ALGOS = ["Pop", "Bias", "BiasedMF", "Broken"]
PLAN = [("ML", p, a) for p in (1, 2) for a in ALGOS]


class Broken(Recommender):
    """A model whose fit always raises."""

    def __init__(self, message: str = "no fit today") -> None:
        self.message = message

    def fit(self, ratings):
        raise RuntimeError(self.message)


def _algorithms(evaluation: MultiEval) -> None:
    evaluation.add_algorithms(Popular(), name="Pop")
    evaluation.add_algorithms(Bias(damping=5), attrs=["damping"], name="Bias")
    evaluation.add_algorithms(BiasedMF(features=8, iterations=3, seed=1), attrs=["features"], family="mf")
    evaluation.add_algorithms(Broken(), name="Broken")


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def splits(spark):
    ratings = pd.read_csv(shared_data("ml-latest-small/ratings.csv"), usecols=["userId", "movieId", "rating"])
    ratings = ratings.rename(columns={"userId": "user", "movieId": "item"})
    ratings = ratings[ratings["user"] <= 150].reset_index(drop=True)
    folds = partition_users(spark.createDataFrame(ratings), 2, SampleN(5), seed=7)
    return [TTPair(cached(fold.train), cached(fold.test)) for fold in folds]  # the split computed once


@pytest.fixture(scope="module")
def main(spark, splits, tracking_uri, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train1, test1 = splits[0].train.toPandas(), splits[0].test.toPandas()
    items = train1["item"].value_counts().index[:3].tolist()
    fresh = pd.DataFrame({"user": FRESH, "item": items, "rating": [4.0, 3.0, 5.0]})
    folder = tmp_path_factory.mktemp("evals") / "main-eval"
    evaluation = MultiEval(folder, recommend=N, spark=spark, experiment=EXPERIMENT, tracking_uri=tracking_uri)
    with_fresh = TTPair(splits[0].train, splits[0].test.unionByName(spark.createDataFrame(fresh)))
    evaluation.add_datasets([with_fresh, splits[1]], name="ML", source="partition_users")
    _algorithms(evaluation)

    evaluation.run(runs=[2], progress=False)
    first = evaluation.collect_results()
    evaluation.run(progress=False)
    records = {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in (folder / "runs").glob("run-*.json")}
    yield SimpleNamespace(
        me=evaluation,
        folder=folder,
        first=first,
        table=evaluation.collect_results(),
        records=records,
        train1=train1,
        test1=test1,
    )
    torch.set_num_threads(threads)


def _record(folder, run_id: int) -> dict:
    return json.loads((folder / "runs" / f"run-{run_id}.json").read_text())


def test_runs_table_has_lenskit_columns_in_runid_order(main):
    table = main.table
    assert list(table.columns[:5]) == ["RunId", "DataSet", "Partition", "AlgoClass", "AlgoStr"]
    for column in ["damping", "features", "family", "source", "TrainTime", "PredTime", "RecTime", "status"]:
        assert column in table.columns
    assert set(TOPN) | {"rmse", "mae", "user_rmse", "user_mae", "MLflowRunId"} <= set(table.columns)
    assert table["RunId"].tolist() == list(range(1, 9))
    assert list(zip(table["DataSet"], table["Partition"], table["AlgoStr"].str.split("(").str[0])) == PLAN
    assert table["AlgoClass"].tolist()[:4] == ["Popular", "Bias", "BiasedMF", "Broken"]
    assert table.loc[1, "damping"] == 5 and table.loc[2, "features"] == 8 and table.loc[2, "family"] == "mf"
    assert (table["source"] == "partition_users").all()
    assert main.me.planned_runs()["RunId"].tolist() == list(range(1, 9)) and main.me.run_count() == 8

    ok = table[table["status"] == "ok"]
    assert (ok["TrainTime"] > 0).all() and (ok["RecTime"] > 0).all()
    # Popular does not predict ratings; Bias and BiasedMF do.
    assert ok.loc[ok["AlgoClass"] == "Popular", ["PredTime", "rmse"]].isna().all().all()
    assert ok.loc[ok["AlgoClass"] != "Popular", ["PredTime", "rmse", "user_mae"]].notna().all().all()

    # The first call ran RunId 2 only; the second call skipped it.
    assert main.first["RunId"].tolist() == [2] and main.first["status"].tolist() == ["ok"]
    assert table.loc[1, "TrainTime"] == main.first.loc[0, "TrainTime"]
    assert table.loc[1, "MLflowRunId"] == main.first.loc[0, "MLflowRunId"]

    on_disk = pd.read_csv(main.folder / "runs.csv")
    assert list(on_disk.columns) == list(table.columns)
    assert on_disk["RunId"].tolist() == list(range(1, 9))
    assert np.allclose(on_disk["ndcg@10"], table["ndcg@10"], equal_nan=True)

    # All runs' outputs as one Spark table each, keyed by RunId.
    ok_ids = set(ok["RunId"])
    recs = main.me.recommendations()
    assert "RunId" in recs.columns
    assert {r["RunId"] for r in recs.select("RunId").distinct().collect()} == ok_ids
    predicted = {r["RunId"] for r in main.me.predictions().select("RunId").distinct().collect()}
    assert predicted == set(ok.loc[ok["AlgoClass"] != "Popular", "RunId"])


def test_each_run_reports_beyond_accuracy_of_its_lists(main, tracking_uri):
    """Coverage, exposure Gini, novelty, popularity and personalisation @10 of each run's written lists
    against its fold's training data, recomputed in pandas: the same in the runs table and in MLflow."""
    recs = main.me.recommendations().toPandas()
    table = main.table.set_index("RunId")
    for run_id in (1, 2):  # Popular and Bias on fold 1
        expected = beyond_accuracy(recs[recs["RunId"] == run_id], main.train1, 10)
        assert set(expected) == set(BEYOND_COLUMNS) - {"diversity@10"}  # the data sets have no item vectors
        assert table.loc[run_id, list(expected)].to_dict() == pytest.approx(expected, abs=1e-12)
    assert "diversity@10" not in table.columns
    # Popular lists the most popular items (the least novel); BiasedMF the most personal, widest lists.
    fold = table.loc[[1, 2, 3]]
    assert fold["popularity@10"].idxmax() == 1 and fold["novelty@10"].idxmin() == 1
    assert fold["personalisation@10"].idxmax() == 3 and fold["coverage@10"].idxmax() == 3
    assert table.loc[[4, 8], list(expected)].isna().all().all()  # the broken runs
    mlflow.set_tracking_uri(tracking_uri)
    logged = mlflow.get_run(table.loc[2, "MLflowRunId"]).data.metrics
    assert logged["novelty_at_10"] == pytest.approx(table.loc[2, "novelty@10"])
    assert logged["personalisation_at_10"] == pytest.approx(table.loc[2, "personalisation@10"])


def test_failing_algorithm_is_recorded_and_tracked(main, tracking_uri):
    table = main.table
    failed = table[table["AlgoClass"] == "Broken"]
    assert failed["RunId"].tolist() == [4, 8]
    assert (failed["status"] == "failed").all()
    assert failed["error"].str.contains("RuntimeError: no fit today").all()
    assert failed[TOPN].isna().all().all()
    assert "raise RuntimeError" in _record(main.folder, 4)["_traceback"]
    assert (table.loc[table["AlgoClass"] != "Broken", "status"] == "ok").all()
    assert not (main.folder / "recommendations" / "RunId=4").exists()

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    parent_id = (main.folder / "mlflow_parent_run.txt").read_text().strip()
    parent = runs[runs["run_id"] == parent_id].iloc[0]
    assert parent["tags.mlflow.runName"] == "main-eval" and parent["status"] == "FINISHED"
    nested = runs[runs["tags.mlflow.parentRunId"] == parent_id].set_index("run_id")
    assert len(nested) == 8 and set(nested.index) == set(table["MLflowRunId"])
    by_run = nested.loc[table["MLflowRunId"]]
    assert by_run["status"].tolist() == ["FAILED" if a == "Broken" else "FINISHED" for _, _, a in PLAN]
    assert by_run.loc[failed["MLflowRunId"], "tags.error"].str.contains("no fit today").all()
    mf = by_run.iloc[2]
    assert (
        mf["params.AlgoClass"] == "BiasedMF"
        and mf["params.DataSet"] == "ML"
        and mf["params.Partition"] == "1"
    )
    assert mf["params.algo.features"] == "8" and mf["params.features"] == "8" and mf["params.family"] == "mf"
    assert mf["metrics.ndcg_at_10"] == pytest.approx(table.loc[2, "ndcg@10"])
    assert mf["metrics.rmse"] == pytest.approx(table.loc[2, "rmse"])
    assert mf["metrics.TrainTime"] == pytest.approx(table.loc[2, "TrainTime"])

    client = mlflow.MlflowClient()
    assert {a.path for a in client.list_artifacts(mf.name)} >= {"user_metrics.csv"}
    assert "traceback.txt" in {a.path for a in client.list_artifacts(failed["MLflowRunId"].iloc[0])}
    assert {"runs.csv", "plots"} <= {a.path for a in client.list_artifacts(parent_id)}
    plots = {a.path for a in client.list_artifacts(parent_id, "plots")}
    assert {"plots/ndcg_at_10.png", "plots/precision_at_10.png", "plots/rmse.png"} <= plots
    png = (main.folder / "plots" / "ndcg_at_10.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=parent_id, artifact_path="runs.csv"))
    assert logged["RunId"].tolist() == list(range(1, 9))


def test_record_metrics_equal_an_independent_computation(main, splits):
    truth = splits[1].test.toPandas()  # RunId 7: BiasedMF on ML partition 2
    recs = pd.read_parquet(main.folder / "recommendations" / "RunId=7")
    assert recs.groupby("user").size().max() == N
    analysis = RecListAnalysis(["user"])
    for metric in TOPN:
        kind, _, k = metric.partition("@")
        analysis.add_metric(kind, k=int(k) if k else None)
    expected = analysis.summary(analysis.compute(recs[["user", "rank", "item"]], truth))
    record = _record(main.folder, 7)
    for metric in TOPN:
        assert record[metric] == pytest.approx(expected[metric], rel=1e-9, abs=1e-12), metric
    assert record["n_test_users"] == truth["user"].nunique()
    assert expected["ndcg@10"] > 0

    predictions = pd.read_parquet(main.folder / "predictions" / "RunId=7")
    assert len(predictions) == len(truth)
    errors = prediction_metrics(predictions)
    assert record["rmse"] == pytest.approx(errors["rmse"], rel=1e-9)
    assert record["user_mae"] == pytest.approx(errors["user_mae"], rel=1e-9)


def test_unknown_test_users_get_fallbacks_and_are_counted(main):
    n_users = main.test1["user"].nunique() + 1
    popular, bias, mf = (_record(main.folder, i) for i in (1, 2, 3))  # fold 1
    for record in (popular, bias, mf):
        assert record["n_test_users"] == n_users and record["n_users_with_recs"] == n_users

    per_user = pd.read_csv(main.folder / "user_metrics" / "run-1.csv").set_index("user")
    assert per_user.loc[FRESH, "nrecs"] == N and per_user.loc[FRESH, "ntruth"] == 3
    assert per_user.loc[FRESH, "hit@10"] == 1.0  # the three most popular items

    recs = pd.read_parquet(main.folder / "recommendations" / "RunId=1")
    counts = main.train1.groupby("item").size().reset_index(name="n")
    expected = counts.sort_values(["n", "item"], ascending=[False, True])["item"].head(N).tolist()
    assert recs[recs["user"] == FRESH].sort_values("rank")["item"].tolist() == expected

    predictions = pd.read_parquet(main.folder / "predictions" / "RunId=2")
    fresh = predictions[predictions["user"] == FRESH]
    model = Bias(damping=5).fit(main.train1)
    fallback = model.mean.item() + model.item_offsets[model.item_vocab.indices(fresh["item"].to_numpy())]
    assert np.allclose(fresh["prediction"], fallback.numpy())  # mu + b_i
    mf_recs = pd.read_parquet(main.folder / "recommendations" / "RunId=3")
    assert (mf_recs["user"] == FRESH).sum() == N


def test_rerun_skips_done_runs_retries_failed_ones_and_cleans_leftovers(main, capsys):
    folder = main.folder
    # What a killed job leaves: a Parquet staging folder, outputs of a run whose record was never
    # written (RunId 5 here, with a foreign file in it), outputs of an unknown run, a half-written record.
    staging = folder / "recommendations" / ".RunId=3.writing-deadbeef"
    staging.mkdir()
    (staging / "part-0.parquet").write_bytes(b"partial")
    (folder / "runs" / "run-5.json").unlink()
    (folder / "recommendations" / "RunId=5" / "part-junk.parquet").write_bytes(b"junk")
    (folder / "predictions" / "RunId=99").mkdir()
    (folder / "runs" / ".run-6.json.0badf00d").write_text("{")
    before = _record(folder, 4)

    main.me.run(progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("MultiEval run")]
    assert [re.sub(r"\d+\.\ds", "<s>", line) for line in lines] == [
        "MultiEval run 1/3 (RunId 4, Broken on ML partition 1): failed (RuntimeError: no fit today); 2 left",
        "MultiEval run 2/3 (RunId 5, Pop on ML partition 2): ok, fit <s>, recommend <s>; 1 left",
        "MultiEval run 3/3 (RunId 8, Broken on ML partition 2): failed (RuntimeError: no fit today); 0 left",
    ]

    assert not staging.exists() and not (folder / "predictions" / "RunId=99").exists()
    assert not (folder / "runs" / ".run-6.json.0badf00d").exists()
    assert not (folder / "recommendations" / "RunId=5" / "part-junk.parquet").exists()
    recs = folder / "recommendations"  # each RunId a link to one version: the redone run's old one is gone
    versions = {str(p) for p in recs.iterdir() if p.name.startswith(".v")}
    assert versions == {os.path.realpath(p) for p in recs.iterdir() if p.is_symlink()}
    rerun = _record(folder, 5)
    assert rerun["status"] == "ok" and rerun["MLflowRunId"] != main.table.loc[4, "MLflowRunId"]
    for metric in TOPN:
        assert rerun[metric] == pytest.approx(main.table.loc[4, metric], rel=1e-12)
    retried = _record(folder, 4)  # failed runs are tried again
    assert retried["status"] == "failed" and retried["MLflowRunId"] != before["MLflowRunId"]
    for name, (text, mtime) in main.records.items():
        if name not in ("run-4.json", "run-5.json", "run-8.json"):
            path = folder / "runs" / name
            assert path.read_text() == text and path.stat().st_mtime_ns == mtime, name
    table = pd.read_csv(folder / "runs.csv")
    assert table["RunId"].tolist() == list(range(1, 9))
    assert main.me.recommendations().where("RunId = 5").count() == N * rerun["n_test_users"]


def test_persisted_data_gives_the_same_metrics(spark, splits, main, tracking_uri, tmp_path):
    folder = tmp_path / "persisted"
    writer = MultiEval(folder, recommend=N, spark=spark, experiment=EXPERIMENT, tracking_uri=tracking_uri)
    writer.add_datasets(splits, name="ML", source="partition_users")
    _algorithms(writer)
    writer.persist_data()
    for part in ("1/train", "1/test", "2/train", "2/test"):
        assert any((folder / "data" / "ML" / part).glob("*.parquet")), part

    def no_split():
        raise AssertionError("the split was recomputed instead of read from the persisted data")

    # A fan-out job: same definitions, the split not recomputed, one run, the model saved and logged.
    job = MultiEval(
        folder, recommend=N, spark=spark, experiment=EXPERIMENT, tracking_uri=tracking_uri, save_models=True
    )
    job.add_datasets(no_split, name="ML", source="partition_users")
    _algorithms(job)
    job.persist_data()
    # A data set added later (not persisted) comes after: data sets outer, algorithms inner.
    job.add_datasets(lambda: splits[1], name="Later")
    planned = job.planned_runs()
    assert planned["RunId"].tolist() == list(range(1, 13)) and job.run_count() == 12
    assert planned["DataSet"].tolist() == ["ML"] * 8 + ["Later"] * 4
    assert planned["Partition"].tolist() == [1] * 4 + [2] * 4 + [1] * 4
    assert planned["AlgoStr"].str.split("(").str[0].tolist() == ALGOS * 3
    job.run(runs=6, progress=False)
    table = job.collect_results()
    assert table["RunId"].tolist() == [6] and table.loc[0, "status"] == "ok"
    expected = main.table.set_index("RunId").loc[6]  # Bias on ML partition 2
    for metric in [*TOPN, "rmse", "user_rmse"]:
        assert table.loc[0, metric] == pytest.approx(expected[metric], rel=1e-9), metric

    saved = Model.load(folder / "models" / "run-6.pt")
    assert isinstance(saved, Bias) and saved.damping == 5
    logged = load_model(f"runs:/{table.loc[0, 'MLflowRunId']}/model")
    assert torch.equal(logged.item_offsets, saved.item_offsets)


# ---- a killed call's MLflow run, progress lines ------------------------------------------------------


def test_rerun_kills_the_nested_run_a_killed_call_left_running(any_spark, mlflow_uri, tmp_path, capsys):
    import time

    from spark_recs import tracking
    from spark_recs.evaluation.multieval.report import PARENT_RUN_FILE

    train = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [10, 20, 10, 30, 20, 30]})
    test = pd.DataFrame({"user": [1, 2, 3], "item": [30, 20, 10]})
    folder = tmp_path / "tiny-eval"
    evaluation = MultiEval(folder, recommend=2, spark=any_spark, experiment="stale", tracking_uri=mlflow_uri)
    evaluation.add_datasets((train, test), name="tiny")
    evaluation.add_algorithms(Popular(), name="Pop")
    evaluation.add_algorithms(Popular(), name="Pop2")
    # What a call killed during RunId 1 leaves: its nested run RUNNING and no record. Beside it, runs that
    # live jobs hold: RunId 2 (not selected below), and RunId 1 started after the rerun began.
    parent = tracking.parent_run_id("stale", folder.name, folder / PARENT_RUN_FILE, tracking_uri=mlflow_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent).info.experiment_id

    def nested(run_id: int, **kwargs) -> str:
        tags = {"mlflow.parentRunId": parent, "RunId": str(run_id)}
        return client.create_run(experiment, tags=tags, **kwargs).info.run_id

    killed, other_job = nested(1), nested(2)
    later = nested(1, start_time=int(time.time() * 1000) + 3_600_000)

    evaluation.run(runs=[1])

    status = {run_id: client.get_run(run_id).info.status for run_id in (killed, other_job, later)}
    assert status == {killed: "KILLED", other_job: "RUNNING", later: "RUNNING"}
    assert "ended before recording a result" in client.get_run(killed).data.tags["error"]
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}' AND tags.RunId = '1'")
    finished = [r.info.run_id for r in runs if r.info.status == "FINISHED"]
    assert finished == [_record(folder, 1)["MLflowRunId"]]
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("MultiEval")]
    assert len(lines) == 1 and "\r" not in err
    assert re.fullmatch(
        r"MultiEval run 1/1 \(RunId 1, Pop on tiny partition 1\): ok, fit \d+\.\ds, recommend \d+\.\ds; 0 left",
        lines[0],
    )


def test_run_lines_name_the_run_its_status_times_and_what_is_left():
    from spark_recs.evaluation.multieval.runner import _run_line

    record = {"RunId": 7, "AlgoStr": "ALS", "DataSet": "ML", "Partition": 2, "status": "ok", "error": None}
    times = {"TrainTime": 12.34, "PredTime": None, "RecTime": 4.06}
    assert _run_line(record | times, 3, 30) == (
        "MultiEval run 3/30 (RunId 7, ALS on ML partition 2): ok, fit 12.3s, recommend 4.1s; 27 left"
    )
    failed = record | {"status": "failed", "error": "RuntimeError: no fit\ntoday", "TrainTime": None}
    assert _run_line(failed, 30, 30).endswith("): failed (RuntimeError: no fit); 0 left")
