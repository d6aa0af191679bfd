"""The champion/challenger gate: the decision rule on hand-made figures, then `spark-recs promote` on real
GRU4Rec versions (a first model, a better and a worse challenger, a guard), checked in the registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import shared_data

from spark_recs import tasks
from spark_recs.cli import main
from spark_recs.config import load_config
from spark_recs.core.params import ConfigError
from spark_recs.serving.promotion import decide, parse_guards

ROOT = Path(__file__).resolve().parents[2]
CHAMPION = {"recall@20": 0.50, "mrr@20": 0.20, "coverage@20": 0.30, "rmse": 0.90}


@pytest.mark.parametrize(
    "challenger, margin, guards, promoted, reason",
    [
        ({"recall@20": 0.52}, 0.0, {}, True, "recall@20 0.5200 beats the champion's 0.5000"),
        ({"recall@20": 0.50}, 0.0, {}, False, "does not beat the champion's 0.5000 by more than 0"),
        ({"recall@20": 0.52}, 0.05, {}, False, "by more than 0.05"),
        ({"recall@20": 0.49}, -0.02, {}, True, "beats"),  # a negative margin tolerates a small loss
        ({"recall@20": 0.52, "coverage@20": 0.25}, 0.0, {"coverage@20": 0.01}, False, "guard coverage@20"),
        ({"recall@20": 0.52, "coverage@20": 0.295}, 0.0, {"coverage@20": 0.01}, True, "beats"),
    ],
)
def test_the_decision_rule(challenger, margin, guards, promoted, reason):
    figures = CHAMPION | challenger
    verdict, why = decide(figures, CHAMPION, "recall@20", margin, guards)
    assert verdict is promoted and reason in why


def test_an_error_metric_must_fall_and_the_first_challenger_always_wins():
    assert decide(CHAMPION | {"rmse": 0.85}, CHAMPION, "rmse")[0] is True
    assert decide(CHAMPION | {"rmse": 0.95}, CHAMPION, "rmse")[0] is False
    assert decide(CHAMPION, None, "rmse") == (True, "no champion yet: the first challenger becomes champion")
    with pytest.raises(ConfigError, match="the evaluation gives no 'ndcg@10'"):
        decide(CHAMPION, None, "ndcg@10")


@pytest.mark.parametrize("entry", ["mrr@20", "mrr@20:-0.1", "mrr@20:x", ":0.1"])
def test_a_guard_is_metric_colon_tolerance(entry):
    with pytest.raises(ConfigError, match="is not metric:tolerance"):
        parse_guards([entry])
    assert parse_guards(["mrr@20:0.01", "recall@20:0"]) == {"mrr@20": 0.01, "recall@20": 0.0}


@pytest.fixture
def prepared(tmp_path):
    """300 sessions of each official rsc15_100k part, as `spark-recs prepare` writes them."""
    files = {"train": "train_tr", "valid": "train_valid", "test": "test"}
    for part, name in files.items():
        clicks = pd.read_csv(shared_data(f"sessions/rsc15_100k/yoochoose-clicks-100k_{name}.txt"), sep="\t")
        kept = clicks[clicks["SessionId"].isin(sorted(clicks["SessionId"].unique())[:300])]
        (tmp_path / "prepared" / f"sessions_{part}").mkdir(parents=True)
        kept.to_parquet(tmp_path / "prepared" / f"sessions_{part}" / "part-0.parquet", index=False)
    return str(tmp_path / "prepared")


def register(spark, prepared, tmp_path, epochs: int) -> str:
    """A GRU4Rec trained for ``epochs`` (0: its random initial weights) registered as @challenger."""
    settings = [f"model.n_epochs={epochs}", "model.layers=[16]", "model.n_sample=64", "paths.model_save=null"]
    trained = tasks.run(
        "train", spark, load_config(None, settings), prepared, register_as="gate", alias="challenger"
    )
    return trained.registered_version


def aliases() -> dict[str, str]:
    return {a: str(v) for a, v in mlflow.MlflowClient().get_registered_model("gate").aliases.items()}


def test_promote_moves_the_champion_only_for_a_better_challenger(
    spark, prepared, tmp_path, mlflow_uri, one_torch_thread, capsys
):
    gate = ["promote", "--input", prepared, "--registered-model", "gate"]
    weak = register(spark, prepared, tmp_path, 0)
    assert main(gate) == 0  # no champion yet
    assert "promoted: no champion yet" in capsys.readouterr().out
    assert aliases() == {"challenger": weak, "champion": weak}

    strong = register(spark, prepared, tmp_path, 2)
    assert main(gate) == 0
    out = capsys.readouterr().out
    assert "promoted: recall@20" in out and f"@champion version {weak} -> {strong}" in out
    assert aliases() == {"challenger": strong, "champion": strong}

    worse = register(spark, prepared, tmp_path, 0)
    assert main(gate) == 0
    assert "kept the champion: recall@20" in capsys.readouterr().out
    assert aliases() == {"challenger": worse, "champion": strong}

    # A margin that lets the weak challenger pass on recall, and a guard on MRR that stops it.
    guarded = [*gate, "--set", "promotion.margin=-1", "--set", 'promotion.guards=["mrr@20:0"]']
    assert main(guarded) == 0
    assert "kept the champion: guard mrr@20" in capsys.readouterr().out
    assert aliases() == {"challenger": worse, "champion": strong}

    runs = mlflow.search_runs(experiment_names=["spark_recs-promote"], order_by=["attributes.start_time"])
    assert runs["tags.decision"].tolist() == ["promoted", "promoted", "kept", "kept"]
    last = runs.iloc[-1]
    assert last["metrics.delta_mrr_at_20"] == pytest.approx(
        last["metrics.challenger_mrr_at_20"] - last["metrics.champion_mrr_at_20"]
    )
    assert last["metrics.delta_mrr_at_20"] < 0 and last["params.champion_version"] == strong
    for side in ("challenger", "champion"):  # the lists' beyond-accuracy figures, for guards to use
        assert 0 < last[f"metrics.{side}_coverage_at_20"] <= 1 and last[f"metrics.{side}_novelty_at_20"] > 0


def test_a_metric_evaluate_does_not_measure_is_refused_before_spark_starts(tmp_path, capsys):
    assert main(["promote", "--input", str(tmp_path), "--set", "promotion.primary=ndcg@10"]) == 2
    assert (
        "promotion: 'ndcg@10' is not measured; evaluate gives ['recall@20', 'mrr@20', 'coverage@20', "
        "'gini@20', 'novelty@20', 'popularity@20', 'personalisation@20']" in capsys.readouterr().err
    )


def test_the_same_gate_for_an_rl_recommender(spark, mlflow_uri, capsys):
    """Two DDPG recommenders registered by `train`; promote scores each on the temporal holdout exactly as
    `train` did (the same figures), and the margin decides."""
    config = ROOT / "conf" / "rl-ddpg.yaml"
    small = [
        "training.epochs=1",
        "embeddings.dim=16",
        "embeddings.mf_iterations=3",
        "mlflow.registered_model=rl-gate",
    ]
    small.append(f"data.ratings={shared_data('ml-latest-small')}")
    holdout = {}
    for seed in (1, 2):
        trained = tasks.run(
            "train", spark, load_config(config, [*small, f"env.seed={seed}"], schema=None), progress=False
        )
        holdout[trained.registered_version] = trained.evaluation.iloc[0]["ndcg_log2p1@10"]
    first, second = sorted(holdout)
    gate = ["promote", "--config", str(config), *[a for s in small for a in ("--set", s)]]
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("rl-gate", "challenger", first)
    assert main(gate) == 0 and "promoted: no champion yet" in capsys.readouterr().out
    client.set_registered_model_alias("rl-gate", "challenger", second)
    assert main([*gate, "--set", "promotion.margin=1"]) == 0  # nDCG cannot rise by 1
    assert "kept the champion" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias("rl-gate", "champion").version) == first
    assert main([*gate, "--set", "promotion.margin=-1"]) == 0
    assert "promoted" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias("rl-gate", "champion").version) == second
    last = mlflow.search_runs(
        experiment_names=["spark_recs-promote"], order_by=["attributes.start_time DESC"]
    ).iloc[0]
    assert last["metrics.challenger_ndcg_log2p1_at_10"] == pytest.approx(holdout[second], abs=1e-12)
    assert last["metrics.champion_ndcg_log2p1_at_10"] == pytest.approx(holdout[first], abs=1e-12)
