"""`spark-recs tune` for an RL recommender (kind: rl, DDPG) on MovieLens latest-small: trials train on
every user's ratings but the last two and are scored on the one before the last, never reading the last
(the test row); the best config trains with `spark-recs train`; --train-best scores the test rows once."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from conftest import shared_data
from optuna.trial import TrialState

from spark_recs.cli import main
from spark_recs.config import load_config
from spark_recs.tasks import run

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["training.epochs=2", "embeddings.dim=16", "embeddings.mf_iterations=3", "tune.n_trials=2"]


def tune_config(tmp_path, *overrides) -> dict:
    config = load_config(ROOT / "conf" / "tune-rl-ddpg.yaml", [*SMALL, *overrides], schema=None)
    config["data"]["ratings"] = str(shared_data("ml-latest-small"))
    config["tune"] |= {
        "storage": f"sqlite:///{tmp_path / 'tuning.db'}",
        "best_config": str(tmp_path / "best.yaml"),
    }
    return config


def test_trials_train_on_the_early_ratings_and_score_the_next_one(any_spark, tmp_path, mlflow_uri):
    config = tune_config(tmp_path, "tune.parallelism=2")
    tuned = run("tune", any_spark, config)

    study = optuna.load_study(study_name=config["tune"]["study"], storage=config["tune"]["storage"])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:
        assert [Path(p).name for p in trial.user_attrs["inputs"]] == [
            "train",
            "valid",
            "item_embeddings.parquet",
        ]
        assert list(trial.intermediate_values) == [1, 2] and trial.value == trial.intermediate_values[2]
        assert 0 <= trial.value <= 1
    client = mlflow.MlflowClient()
    experiment = client.get_run(tuned.run_id).info.experiment_id
    for trial_run in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{tuned.run_id}'"):
        history = client.get_metric_history(trial_run.info.run_id, "valid_ndcg_log2p1_at_10")
        assert sorted(m.step for m in history) == [1, 2]

    best = load_config(tuned.best_config, schema=None)
    assert best["kind"] == "rl" and "tune" not in yaml.safe_load(Path(tuned.best_config).read_text())
    assert {k: best["ddpg"][k] for k in tuned.best_params} == tuned.best_params


def test_train_best_scores_the_test_rows_once_and_registers(spark, tmp_path, mlflow_uri, capsys):
    config_file = tmp_path / "tune.yaml"
    config_file.write_text(yaml.safe_dump(tune_config(tmp_path, "tune.parallelism=1", "training.epochs=1")))
    argv = [
        "tune",
        "--config",
        str(config_file),
        "--train-best",
        "--register-as",
        "rl-tuned",
        "--alias",
        "best",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "best valid ndcg@10 = " in out and "test ndcg_log2p1@10 = " in out
    version = mlflow.MlflowClient().get_model_version_by_alias("rl-tuned", "best")
    trained = mlflow.get_run(version.run_id)
    assert trained.data.tags["kind"] == "rl" and "holdout_ndcg_log2p1_at_10" in trained.data.metrics
    parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.kind = 'tune'").iloc[0]
    assert parent["metrics.test_ndcg_log2p1_at_10"] == pytest.approx(
        trained.data.metrics["holdout_ndcg_log2p1_at_10"]
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("tune.metric=mrr@10", "an RL recommender is scored with ['hit@k', 'ndcg@k'] on the validation rows"),
        ("search_space.policy_lrr={dtype: float, values: [0.1, 0.2]}", "DDPG has no parameter 'policy_lrr'"),
    ],
)
def test_a_search_an_rl_recommender_cannot_run_is_refused(tmp_path, override, message):
    from spark_recs.tasks.rl import check_tune

    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_tune(load_config(ROOT / "conf" / "tune-rl-ddpg.yaml", [override], schema=None))


def test_a_bcq_search_spans_its_update_and_network_parameters():
    """BCQ's section holds two declarations (updates, and the generator's network): both are searchable."""
    from spark_recs.tasks.rl import check_tune

    config = load_config(ROOT / "conf" / "tune-rl-ddpg.yaml", ["algorithm.name=bcq"], schema=None)
    config["search_space"] = {
        "phi": {"dtype": "float", "values": [0.01, 0.1]},
        "generator_lr": {"dtype": "float", "values": [1.0e-5, 1.0e-3], "log": True},
    }
    assert check_tune(config).names == ["phi", "generator_lr"]
    config["search_space"] = {"policy_lr": {"dtype": "float", "values": [1.0e-5, 1.0e-3]}}
    with pytest.raises(ValueError, match="BCQ has no parameter 'policy_lr'"):
        check_tune(config)
