"""RL training: the epoch loop, the supervised baseline, seeded determinism, the rl config schema, and
the ``kind: rl`` task's train step end to end (Spark, a real MLflow store, the registry and batch.recommend)."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs import batch
from spark_recs.config import ConfigError, load_config, schemas
from spark_recs.models.topn import recommend_frame
from spark_recs.rl.embeddings import ItemEmbeddings
from spark_recs.rl.env import FrameEnv
from spark_recs.rl.recommender import ActorRecommender
from spark_recs.rl.training import (
    ALGORITHMS,
    NET_PARAMS,
    build_algorithm,
    train_policy,
    train_supervised_actor,
    unit_rms,
)
from spark_recs.serving.references import load_model
from spark_recs.tasks.rl import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONF = Path(__file__).resolve().parents[2] / "conf"
N_ITEMS = 12
EMBEDDINGS = ItemEmbeddings(100 + np.arange(N_ITEMS), np.random.default_rng(1).standard_normal((N_ITEMS, 4)))


def cycle_ratings(n_users: int = 24, length: int = 16, seed: int = 0) -> pd.DataFrame:
    """Each user rates items 100..111 in a cycle from a random start: the next item follows the last one."""
    rng = np.random.default_rng(seed)
    rows = [
        (user, 100 + (start + t) % N_ITEMS, float(rng.integers(1, 6)), t)
        for user in range(n_users)
        for start in [int(rng.integers(N_ITEMS))]
        for t in range(length)
    ]
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def cycle_env(seed: int = 0) -> FrameEnv:
    return FrameEnv(
        EMBEDDINGS, cycle_ratings(), frame_size=3, batch_size=6, test_size=0.25, min_seq_size=4, seed=seed
    )


def weights(nets: dict) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, net in nets.items() for k, v in net.state_dict().items()}


# ---- the loops ------------------------------------------------------------------------------------


def test_train_policy_records_every_epoch_and_steps_once_per_batch():
    env = cycle_env()
    algo = build_algorithm("td3", env, hidden_size=16, seed=0, policy_lr=1e-3, value_lr=1e-3)
    history = train_policy(env, algo, 3, progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert algo._step == 3 * len(env.train_dataloader)
    expected = {f"{part}_{loss}" for part in ("train", "test") for loss in ("value1", "value2", "policy")}
    assert expected <= set(history[0]) and all(np.isfinite(r["test_value1"]) for r in history)


def test_progress_in_a_log_is_plain_lines(capsys):
    env = cycle_env()
    batches = 2 * len(env.train_dataloader)
    train_policy(env, build_algorithm("ddpg", env, hidden_size=8, seed=0), 2, progress=True)
    train_supervised_actor(env, hidden_size=8, epochs=2, seed=0, progress=True)
    err = capsys.readouterr().err  # captured: not a terminal, as in a redirected log
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 2  # short runs: only the final line each
    assert re.fullmatch(
        rf"DDPG: {batches}/{batches} batches \(100%\) in .*, epoch 2, value .*, policy .*", lines[0]
    )
    assert re.fullmatch(
        rf"supervised: {batches}/{batches} batches \(100%\) in .*, epoch 2, mse [\d.e-]+", lines[1]
    )


@pytest.mark.parametrize("name", ["ddpg", "bcq", "reinforce"])
def test_same_seed_same_weights(name):
    def trained(seed: int) -> dict:
        env = cycle_env(seed)
        shape = {"latent_dim": 3} if name == "bcq" else {}
        algo = build_algorithm(name, env, hidden_size=16, seed=seed, **shape)
        train_policy(env, algo, 2, progress=False)
        return weights(algo.nets)

    first, again, other = trained(7), trained(7), trained(8)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_building_nets_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_algorithm("ddpg", cycle_env(), hidden_size=8, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


def test_supervised_actor_learns_the_next_items_embedding():
    env = cycle_env()
    actor, history = train_supervised_actor(env, hidden_size=128, epochs=200, seed=0, lr=1e-2, progress=False)
    # Predicting the mean embedding scores the per-dimension variance; the next item is fully determined
    # by the frame's last item, so a trained actor must do far better than that.
    mean_only = EMBEDDINGS.vectors.var(dim=0, unbiased=False).mean().item()
    assert history[0]["test_mse"] > 0.5 * mean_only
    assert history[-1]["test_mse"] < 0.1 * mean_only
    assert history[-1]["train_mse"] < history[0]["train_mse"]
    # The state after a user's frame points at the next item: it ranks first by cosine for most users.
    ratings = cycle_ratings()
    model = ActorRecommender.from_policy(
        {"actor": actor}, EMBEDDINGS, ratings, frame_size=3, scoring="cosine"
    )
    last = ratings.sort_values("timestamp").groupby("user")["item"].last()
    scores = model.score_users(model.user_vocab.indices(last.index.to_numpy()))
    predicted = model.item_vocab.ids[scores.argmax(dim=1).numpy()]
    assert np.mean(predicted == 100 + (last.to_numpy() - 100 + 1) % N_ITEMS) >= 0.9


def test_supervised_actor_is_seeded():
    a, _ = train_supervised_actor(cycle_env(), hidden_size=16, epochs=2, seed=3, progress=False)
    b, _ = train_supervised_actor(cycle_env(), hidden_size=16, epochs=2, seed=3, progress=False)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_unit_rms_scales_without_reordering():
    scaled = unit_rms(EMBEDDINGS)
    assert scaled.vectors.pow(2).mean().item() == pytest.approx(1.0)
    ratio = scaled.vectors / EMBEDDINGS.vectors
    torch.testing.assert_close(ratio, torch.full_like(ratio, ratio[0, 0].item()))


# ---- the config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_shipped_configs_load(name):
    config = load_config(CONF / f"rl-{name}.yaml", schema=None)
    assert config["kind"] == "rl" and config["algorithm"]["name"] == name
    assert config["embeddings"]["source"] in ("features", "mf", "file")


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_schema_defaults_are_the_algorithms_defaults(name):
    section = {k: v[0] for k, v in schemas()["rl"][name].items() if k not in NET_PARAMS}
    assert section == ALGORITHMS[name].defaults


@pytest.mark.parametrize(
    "override, message",
    [
        ("ddpg.polcy_lr=0.001", "unknown key 'ddpg.polcy_lr'; did you mean 'ddpg.policy_lr'?"),
        ("evaluaton.k=5", "unknown section 'evaluaton'; did you mean 'evaluation'?"),
        ("env.test_size=1", "env.test_size = 1 is out of range [0, 1)"),
        ("td3.gamma=1.5", "td3.gamma = 1.5 is out of range [0, 1]"),
        ("training.epochs=0", "training.epochs = 0 is out of range [1, inf)"),
        ("algorithm.name=ppo", "algorithm.name must be one of ['ddpg', 'td3', 'bcq', 'reinforce']"),
    ],
)
def test_bad_rl_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(CONF / "rl-ddpg.yaml", [override], schema=None)
    assert message in str(error.value)


def test_a_misspelt_key_in_a_file_names_the_closest_key(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("kind: rl\nembeddings:\n  dimension: 8\n")
    with pytest.raises(
        ConfigError, match="unknown key 'embeddings.dimension'; did you mean 'embeddings.dim'"
    ):
        load_config(path, schema=None)


# ---- the rl task end to end ---------------------------------------------------------------------


def _tiny(**sections) -> dict:
    config = load_config(CONF / "rl-ddpg.yaml", schema=None)
    config["env"].update(frame_size=4, batch_size=8, test_size=0.2, min_seq_size=5, seed=3)
    config["algorithm"]["hidden_size"] = 16
    config["training"].update(epochs=2, log_every=1)
    for section, values in sections.items():
        config[section].update(values)
    return config


@pytest.mark.slow
def test_ddpg_from_config_logs_registers_and_serves(spark, mlflow_uri, tmp_path):
    folder = shared_data("ml-latest-small")
    file = pd.read_csv(folder / "ratings.csv", dtype={"timestamp": str})
    file = file[file["userId"] <= 25]
    file.to_csv(tmp_path / "ratings.csv", index=False)
    # The shared copy has a corrupt timestamp (user 5, movie 39): validation rejects such rows.
    raw = file.assign(timestamp=pd.to_numeric(file["timestamp"], errors="coerce")).dropna()
    config = _tiny(
        data={
            "ratings": str(tmp_path / "ratings.csv"),
            "items": str(folder),
            "user_key": "userId",
            "item_key": "movieId",
        },
        embeddings={"source": "features", "dim": 8},
        evaluation={"holdout": True},
        mlflow={"registered_model": "rl-test", "alias": "champion", "experiment": "rl-tests"},
    )
    result = train(spark, config, tracking_uri=mlflow_uri, progress=False)

    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.params["algorithm.name"] == "ddpg" and run.data.params["env.frame_size"] == "4"
    assert run.data.params["rejected_rows"] == str(len(file) - len(raw))
    updates = result.trainer._step
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/value")] == list(range(updates))
    for key in ("epoch/train_value", "epoch/test_value", "epoch/train_policy"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2]
    assert run.data.metrics["epoch/train_value"] == pytest.approx(result.history.iloc[-1]["train_value"])
    holdout = result.evaluation.iloc[0]
    assert holdout["users"] == raw["userId"].nunique() and 0 <= holdout["hr@10"] <= 1
    assert run.data.metrics["holdout_hr_at_10"] == pytest.approx(holdout["hr@10"])
    assert 0 < holdout["diversity@10"] < 2  # 1 - cos over the policy's item embeddings
    assert run.data.metrics["holdout_diversity_at_10"] == pytest.approx(holdout["diversity@10"])
    # The policy trained on the holdout's training rows: two rows per user fewer than the file.
    assert run.data.params["train_rows"] == str(len(raw) - 2 * raw["userId"].nunique())

    version = client.get_model_version_by_alias("rl-test", "champion")
    assert str(version.version) == str(result.registered_version) == "1"
    assert result.model_uri == "models:/rl-test@champion"
    logged = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="embeddings/item_embeddings.parquet",
        dst_path=str(tmp_path / "a"),
    )
    # The logged embeddings are the ones the registered recommender scores with.
    recommender = result.model
    torch.testing.assert_close(ItemEmbeddings.from_file(logged).vectors, recommender.vectors)

    # The registered recommender starts from each user's full history (the file's last 4 ratings).
    last = raw.sort_values(["userId", "timestamp", "movieId"]).groupby("userId").tail(4)
    user = int(raw["userId"].iloc[0])
    frame = recommender.frame_items[recommender.user_vocab.indices([user])[0]]
    assert (
        recommender.item_vocab.ids[frame.numpy()].tolist() == last[last["userId"] == user]["movieId"].tolist()
    )

    users = sorted(raw["userId"].unique())[:6]
    served = batch.recommend("models:/rl-test@champion", users, 10, spark=spark).toPandas()
    expected = recommend_frame(recommender, np.array(users), 10)
    keys = ["user", "rank"]
    pd.testing.assert_frame_equal(
        served.sort_values(keys).reset_index(drop=True)[expected.columns],
        expected.sort_values(keys).reset_index(drop=True),
        check_dtype=False,
        atol=1e-5,
    )
    assert len(served) == 10 * len(users)


@pytest.mark.slow
def test_reinforce_from_config_on_a_parquet_file_with_mf_embeddings(spark, mlflow_uri, tmp_path):
    path = tmp_path / "ratings.parquet"
    cycle_ratings(n_users=30).to_parquet(path)
    config = _tiny(
        data={"ratings": str(path)},
        algorithm={"name": "reinforce"},
        embeddings={"source": "mf", "dim": 4, "mf_iterations": 5},
        reinforce={"policy_lr": 1e-3},
        evaluation={"holdout": False},
        mlflow={"registered_model": None},
    )
    result = train(spark, config, tracking_uri=mlflow_uri, progress=False)
    assert result.registered_version is None and mlflow.MlflowClient().search_registered_models() == []
    assert result.evaluation is None and result.history["epoch"].tolist() == [1, 2]
    assert {"train_policy", "train_beta", "test_policy", "test_beta"} <= set(result.history.columns)
    recommender = result.model
    assert recommender.policy == "discrete" and len(recommender.item_vocab) == N_ITEMS
    loaded = load_model(result.model_uri)
    assert isinstance(loaded, ActorRecommender) and loaded.policy == "discrete"
    users = recommender.user_vocab.indices([0, 5, 29])
    torch.testing.assert_close(loaded.score_users(users), recommender.score_users(users))
