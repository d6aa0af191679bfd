"""PPO on the MovieLens rating Gym: metrics, the registered policy (no pickle), seeded training, and a short
run of the ``kind: gym`` task's train step against a real MLflow store."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.config import ConfigError, load_config
from spark_recs.models.base import Model
from spark_recs.rl.gym import RatingData
from spark_recs.rl.gym_agent import RatingPolicy, policy_network, score, train_ppo
from spark_recs.tasks.gym import train

CONFIG = Path(__file__).resolve().parents[2] / "conf" / "gym.yaml"
SHORT = [
    "ppo.total_timesteps=4096",
    "env.n_envs=8",
    "ppo.n_steps=64",
    "ppo.batch_size=256",
    "ppo.n_epochs=2",
    "baselines.mlp_epochs=1",
]


@pytest.fixture(scope="module")
def fold1() -> RatingData:
    return RatingData.load(shared_data("ml-100k"), fold=1)


def test_score_against_hand_computed_values():
    metrics = score([1, 4, 5, 3], [1, 4, 4, 5], [1.5, 4, 4.5, 3])
    assert metrics["accuracy"] == 0.5
    assert metrics["mean_reward"] == pytest.approx((2 + math.log(0.8) + math.log(0.6)) / 4)
    assert metrics["rmse"] == pytest.approx(math.sqrt(5 / 4)) and metrics["mae"] == pytest.approx(3 / 4)
    assert metrics["rmse_expected"] == pytest.approx(math.sqrt(0.5 / 4))
    assert metrics["mae_expected"] == pytest.approx(1 / 4)
    assert [metrics[f"share_{k}"] for k in range(1, 6)] == [0.25, 0, 0, 0.5, 0.25]


def test_policy_saves_without_pickle_and_answers_pairs(fold1, one_torch_thread):
    torch.manual_seed(0)
    policy = RatingPolicy.build(policy_network(51, [8]), fold1, [8])
    observations, known = policy.observe(fold1.test["user"].to_numpy(), fold1.test["item"].to_numpy())
    assert known.all()
    np.testing.assert_array_equal(observations, fold1.observations("test"))
    buffer = io.BytesIO()
    policy.save(buffer)
    buffer.seek(0)
    loaded = Model.load(buffer)
    assert isinstance(loaded, RatingPolicy) and loaded.hidden == [8]
    pairs = pd.DataFrame({"user": [1, 1, 99_999], "item": [6, 10, 6]}, index=[5, 6, 7])
    answer = loaded.predict_frame(pairs)
    assert answer.index.tolist() == [5, 6, 7] and np.isnan(answer["prediction"].iloc[2])
    expected = policy.probabilities(fold1.observe(*_indices(fold1, [1, 1], [6, 10]))).argmax(axis=1) + 1
    assert answer["prediction"].iloc[:2].tolist() == expected.tolist()
    with pytest.raises(ValueError, match=r"lacks \['item'\]"):
        loaded.predict_frame(pairs[["user"]])


def _indices(data, users, items):
    return pd.Index(data.user_ids).get_indexer(users), pd.Index(data.item_ids).get_indexer(items)


def test_ppo_training_is_seeded(fold1, one_torch_thread):
    config = load_config(CONFIG, [*SHORT, "ppo.total_timesteps=1024"], schema=None)

    def weights():
        agent, curve = train_ppo(fold1, config["env"], config["ppo"], progress=False)
        assert [step for step, *_ in curve] == [512, 1024]
        return [p.detach().clone() for p in agent.policy.parameters()]

    first, second = weights(), weights()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_ppo_progress_in_a_log_is_plain_lines(fold1, one_torch_thread, capsys):
    config = load_config(CONFIG, [*SHORT, "ppo.total_timesteps=1024"], schema=None)
    train_ppo(fold1, config["env"], config["ppo"])
    err = capsys.readouterr().err  # captured: not a terminal, as in a redirected log
    assert "\r" not in err
    assert re.fullmatch(r"PPO: 1,024/1,024 steps \(100%\) in .*, reward -?[\d.]+, exact [\d.]+\n", err)


def test_gym_config_is_validated():
    config = load_config(CONFIG, schema=None)
    assert config["kind"] == "gym" and config["ppo"]["gamma"] == 0.0 and config["ppo"]["hidden"] == [64, 64]
    with pytest.raises(ConfigError, match="ppo.learning_rate"):
        load_config(CONFIG, ["ppo.learnig_rate=0.1"], schema=None)
    with pytest.raises(ConfigError, match=r"data.fold = 6 is out of range"):
        load_config(CONFIG, ["data.fold=6"], schema=None)


@pytest.mark.slow
def test_train_logs_registers_and_the_policy_loads_back(mlflow_uri, work_dir, one_torch_thread):
    path = shared_data("ml-100k")
    overrides = [
        *SHORT,
        f"data.path={path}",
        "mlflow.experiment=gym-test",
        "mlflow.registered_model=gym-test",
    ]
    result = train(None, load_config(CONFIG, overrides, schema=None), tracking_uri=mlflow_uri)

    table = result.evaluation.set_index("method")
    assert table.index.tolist() == ["ppo", "always_4", "global_mean", "bias_rounded", "supervised_mlp"]
    np.testing.assert_allclose(table[[f"share_{k}" for k in range(1, 6)]].sum(axis=1), 1.0)
    test_ratings = pd.read_csv(path / "u1.test", sep="\t", header=None)[2].to_numpy()
    share = np.bincount(test_ratings, minlength=6)[1:] / len(test_ratings)
    assert table.loc["always_4", "accuracy"] == pytest.approx(share[3])
    always_4_reward = (
        share[3] + (share[2] + share[4]) * math.log(0.8) + share[1] * math.log(0.6) + share[0] * math.log(0.4)
    )
    assert table.loc["always_4", "mean_reward"] == pytest.approx(always_4_reward)
    assert table.loc["global_mean", "rmse_expected"] < table.loc["always_4", "rmse_expected"]

    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.params["ppo.learning_rate"] == "0.001" and run.data.params["test_rows"] == "20000"
    for key in (
        "ppo_accuracy",
        "ppo_mean_reward",
        "bias_rounded_mean_reward",
        "supervised_mlp_rmse",
        "ppo_share_4",
    ):
        method, metric = re.fullmatch(r"(.+)_(accuracy|mean_reward|rmse|share_4)", key).groups()
        assert run.data.metrics[key] == pytest.approx(table.loc[method, metric])
    curve = client.get_metric_history(result.run_id, "train_reward")
    assert [m.step for m in curve] == [512 * k for k in range(1, 9)]
    assert result.history["step"].tolist() == [m.step for m in curve]
    assert [a.path for a in client.list_artifacts(result.run_id, "evaluation")] == ["evaluation/gym_test.csv"]
    assert str(client.get_model_version_by_alias("gym-test", "challenger").version) == "1"
    assert result.model_uri == "models:/gym-test@challenger"

    data = RatingData.load(path, fold=1)
    pairs = data.test[["user", "item"]].iloc[:500]
    served = mlflow.pyfunc.load_model("models:/gym-test@challenger").predict(pairs)
    actions, _ = result.trainer.predict(data.observations("test")[:500], deterministic=True)
    np.testing.assert_array_equal(served["prediction"].to_numpy(), actions + 1)
    np.testing.assert_array_equal(result.model.predict_frame(pairs)["prediction"].to_numpy(), actions + 1)
