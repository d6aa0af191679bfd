"""The notebooks: Databricks source format, widgets first, and each one executed end to end as plain Python on
small data (only ``dbutils.widgets`` and ``display`` come from the local shim below)."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import shared_data

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("0*.py"))
HEADER = "# Databricks notebook source\n"
SEPARATOR = "\n# COMMAND ----------\n"


class Widgets:
    """``dbutils.widgets`` for local runs: the notebook's defaults, replaced by the values a test sets. Like
    Databricks, reading a widget that was never defined fails."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.defaults: dict[str, str] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def get(self, name: str) -> str:
        if name not in self.defaults:
            raise KeyError(f"widget {name!r} is not defined")
        return self.values.get(name, self.defaults[name])


class DBUtils:
    def __init__(self, values: dict[str, str]):
        self.widgets = Widgets(values)


def run_notebook(name: str, widgets: dict[str, str], monkeypatch) -> dict:
    """Execute a notebook from its own folder (as Databricks does); return its namespace and what it displayed."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(NOTEBOOKS)
    dbutils, shown = DBUtils(widgets), []
    namespace = {"__name__": "__main__", "dbutils": dbutils, "display": shown.append}
    exec(compile((NOTEBOOKS / name).read_text(), str(NOTEBOOKS / name), "exec"), namespace)
    assert set(widgets) <= set(dbutils.widgets.defaults), (
        "the test sets a widget the notebook does not define"
    )
    namespace["_displayed"] = shown
    return namespace


def _cells(name: str) -> list[str]:
    return (NOTEBOOKS / name).read_text().removeprefix(HEADER).split(SEPARATOR)


@pytest.mark.parametrize("name", NAMES)
def test_databricks_source_format_with_widgets_first_and_a_markdown_cell_per_step(name):
    text = (NOTEBOOKS / name).read_text()
    assert text.startswith(HEADER)
    cells = [c.strip() for c in _cells(name)]
    markdown = [c.startswith("# MAGIC %md") for c in cells]
    assert markdown[0], "the first cell explains the notebook"
    code = [c for c, md in zip(cells, markdown) if not md]
    assert all(line.startswith("dbutils.widgets.text(") for line in code[0].splitlines()), (
        "widgets come first"
    )
    # Every code cell after the widgets follows a markdown cell that explains it.
    for i, cell in enumerate(cells[1:], start=1):
        if not markdown[i] and not cell.startswith("dbutils.widgets"):
            assert markdown[i - 1], f"cell {i} has no markdown cell before it"
    assert not re.search(r"^# MAGIC %(?!md)", text, re.MULTILINE), "only %md magics (cells stay plain Python)"


@pytest.mark.slow
def test_quickstart_runs_the_demo(spark, mlflow_uri, tmp_path, monkeypatch):
    ns = run_notebook(
        "01_quickstart.py",
        {"n_events": "20000", "n_items": "300", "output": str(tmp_path / "demo")},
        monkeypatch,
    )
    result = ns["result"]
    assert result.counts["rows_in"] == 20000
    assert 0 < result.metrics["mrr@20"] <= result.metrics["recall@20"] <= 1
    assert mlflow.get_run(result.run_id).data.params["model"] == "Popular"
    shown = ns["_displayed"]
    assert any(isinstance(s, pd.DataFrame) and "recall@20" in s.columns for s in shown)
    assert type(shown[-1]).__name__ == "Figure"


@pytest.fixture
def gru4rec_notebook(spark, mlflow_uri, tmp_path, monkeypatch, one_torch_thread):
    clicks = shared_data("sessions/rsc15_100k/yoochoose-clicks-100k_test.txt")
    widgets = {
        "input": str(clicks),
        "prepared": str(tmp_path / "prepared"),
        "overrides": f"model.layers=[32]; model.n_epochs=2; model.n_sample=0; paths.model_save={tmp_path / 'gru.pt'}",
        "register_as": "nb-gru4rec",
    }
    return run_notebook("02_gru4rec.py", widgets, monkeypatch), tmp_path


@pytest.mark.slow
def test_gru4rec_then_batch_inference(gru4rec_notebook, monkeypatch):
    ns, tmp_path = gru4rec_notebook
    counts = ns["prepared"].counts
    assert counts["train"] + counts["valid"] + counts["test"] == counts["accepted"] == 13568
    assert list(ns["trained"].history["epoch"]) == [1, 2]
    assert ns["trained"].model_uri == "models:/nb-gru4rec@challenger"
    metrics = ns["evaluation"].metrics
    assert 0 < metrics["mrr@20"] <= metrics["recall@20"] <= 1
    assert (
        mlflow.MlflowClient().get_model_version_by_alias("nb-gru4rec", "challenger").run_id
        == ns["trained"].run_id
    )

    test = pd.read_parquet(tmp_path / "prepared" / "sessions_test")
    widgets = {
        "model": "models:/nb-gru4rec@challenger",
        "input": str(tmp_path / "prepared" / "sessions_test"),
    }
    widgets |= {"n": "10", "output": str(tmp_path / "recs")}
    batch = run_notebook("05_batch_inference.py", widgets, monkeypatch)
    recs = pd.read_parquet(tmp_path / "recs")
    known = test[test["ItemId"].isin(set(ns["trained"].model.item_ids.tolist()))]
    assert set(recs["SessionId"]) == set(known["SessionId"])  # one list per session with a known item
    assert recs.groupby("SessionId")["rank"].agg(list).map(lambda r: r == list(range(1, 11))).all()
    positions = recs.groupby("SessionId")["position"].first()
    assert positions.equals(known.groupby("SessionId").size().rename("position").astype(positions.dtype))
    coverage = batch["coverage"]
    assert coverage["rows"][0] == len(recs) and coverage["items"][0] == recs["item"].nunique()


@pytest.mark.slow
def test_multieval_compares_the_algorithms(spark, mlflow_uri, tmp_path, monkeypatch, one_torch_thread):
    config = tmp_path / "multieval.yaml"
    config.write_text(
        "data:\n  name: ml-latest-small\nsplit:\n  partitions: 2\n  holdout: 5\n"
        "algorithms:\n  - class: Popular\n  - class: Bias\n    params: {damping: 5.0}\n"
        f"evaluation:\n  path: {tmp_path / 'runs'}\n  recommend: 20\n"
    )
    widgets = {"config": str(config), "ratings": str(shared_data("ml-latest-small"))}
    ns = run_notebook("04_multieval.py", widgets, monkeypatch)
    results = ns["results"]
    assert len(results) == 4 and (results["status"] == "ok").all()
    summary = ns["summary"]
    assert list(summary.index) == ["Bias", "Popular"]
    # Bias predicts ratings (RMSE about 0.9 on MovieLens); Popular only ranks, so it has no RMSE.
    assert 0.7 < summary.loc["Bias", "rmse"] < 1.1 and pd.isna(summary.loc["Popular", "rmse"])
    assert ((summary["ndcg"] > 0) & (summary["ndcg"] <= 1)).all()
    assert type(ns["_displayed"][-1]).__name__ == "Figure"


@pytest.mark.slow
def test_rl_notebook_trains_registers_and_serves(spark, mlflow_uri, monkeypatch, one_torch_thread):
    widgets = {
        "ratings": str(shared_data("ml-latest-small")),
        "overrides": "training.epochs=1; env.batch_size=16; embeddings.mf_iterations=5",
        "registered_model": "nb-rl",
        "users": "1, 2, 3",
    }
    ns = run_notebook("03_rl_recommenders.py", widgets, monkeypatch)
    trained = ns["trained"]
    assert trained.model_uri == "models:/nb-rl@challenger"
    assert list(trained.history["epoch"]) == [1]
    holdout = trained.evaluation.iloc[0]
    assert holdout["users"] == 610 and 0 <= holdout["hr@10"] <= 1 and 0 < holdout["coverage@10"] <= 1
    recs = ns["recs"]
    assert sorted(recs["user"].unique()) == [1, 2, 3]
    assert recs.groupby("user")["rank"].agg(list).map(lambda r: r == list(range(1, 11))).all()
    # The lists are the registered model's own: rated items never come back.
    model = trained.model
    for user, items in recs.groupby("user")["item"]:
        assert model.recommend(user, 10)["item"].tolist() == items.tolist()
    assert type(ns["_displayed"][-2]).__name__ == "Figure"
