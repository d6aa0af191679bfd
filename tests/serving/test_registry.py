"""One log -> register -> alias -> URI step (``log_and_register``) for every model and every trainer."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs import tasks
from spark_recs.config import load_config
from spark_recs.models.popular import Popular
from spark_recs.models.topn import recommend_frame
from spark_recs.serving.references import load_model
from spark_recs.serving.registry import Registration, log_and_register
from spark_recs.tracking import tracked_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONF = Path(__file__).resolve().parents[2] / "conf"
RATINGS = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 3, 4], "item": [10, 20, 10, 30, 10, 20, 40, 50]})


def test_log_and_register_returns_the_uri_to_load_with(mlflow_uri, work_dir):
    everything, first_three = Popular().fit(RATINGS), Popular().fit(RATINGS.head(3))
    with tracked_run("registry-test"):
        only_logged = log_and_register(everything, alias="ignored without a name")
        numbered = log_and_register(everything, registered_model="reg-popular")
        aliased = log_and_register(first_three, registered_model="reg-popular", alias="champion")
    assert only_logged.version is None and not only_logged.uri.startswith("models:/reg-popular")
    assert mlflow.MlflowClient().get_registered_model("reg-popular").aliases == {"champion": 2}
    assert numbered == Registration("models:/reg-popular/1", "1")
    assert aliased == Registration("models:/reg-popular@champion", "2")
    users = np.array([4, 1])
    for logged, model in ((only_logged, everything), (numbered, everything), (aliased, first_three)):
        assert torch.equal(load_model(logged.uri).counts, model.counts)
        served = mlflow.pyfunc.load_model(logged.uri).predict(pd.DataFrame({"user": users}), params={"n": 2})
        pd.testing.assert_frame_equal(served, recommend_frame(model, users, 2))


def _gru4rec_config(spark, tmp_path) -> tuple[dict, str]:
    config = load_config(
        CONF / "example.yaml",
        ["model.layers=[8]", "model.n_epochs=1", "model.n_sample=0", "model.batch_size=16"]
        + [f"paths.model_save={tmp_path / 'gru.pt'}"],  # not the default model.pth in the working dir
    )
    source = shared_data("sessions/rsc15_100k/yoochoose-clicks-100k_test.txt")
    tasks.run("prepare", spark, config, str(source), str(tmp_path / "prepared"))
    return config, str(tmp_path / "prepared")


def _rl_config(tmp_path) -> tuple[dict, None]:
    rng = np.random.default_rng(0)
    ratings = pd.DataFrame(
        [
            (user, 100 + (user + t) % 12, float(rng.integers(1, 6)), t)
            for user in range(24)
            for t in range(16)
        ],
        columns=["user", "item", "rating", "timestamp"],
    )
    ratings.to_parquet(tmp_path / "ratings.parquet")
    config = load_config(CONF / "rl-ddpg.yaml", schema=None)
    config["data"]["ratings"] = str(tmp_path / "ratings.parquet")
    config["embeddings"].update(source="mf", dim=4, mf_iterations=3)
    config["env"].update(frame_size=4, batch_size=8, test_size=0.2, min_seq_size=5, seed=3)
    config["algorithm"]["hidden_size"] = 16
    config["training"].update(epochs=1, log_every=1)
    config["evaluation"]["holdout"] = False
    return config, None


def _gym_config() -> tuple[dict, None]:
    overrides = ["ppo.total_timesteps=1024", "env.n_envs=8", "ppo.n_steps=64", "ppo.batch_size=256"]
    overrides += ["ppo.n_epochs=1", "baselines.mlp_epochs=1", f"data.path={shared_data('ml-100k')}"]
    return load_config(CONF / "gym.yaml", overrides, schema=None), None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gru4rec", "rl", "gym"])
def test_every_trainer_registers_through_the_one_step(kind, spark, mlflow_uri, work_dir, tmp_path):
    config, prepared = {
        "gru4rec": lambda: _gru4rec_config(spark, tmp_path),
        "rl": lambda: _rl_config(tmp_path),
        "gym": _gym_config,
    }[kind]()
    name = f"{kind}-registry-test"
    trained = tasks.run(
        "train", spark, config, prepared, register_as=name, alias="candidate", tracking_uri=mlflow_uri
    )

    assert trained.model_uri == f"models:/{name}@candidate" and trained.registered_version == "1"
    version = mlflow.MlflowClient().get_model_version_by_alias(name, "candidate")
    assert version.run_id == trained.run_id and str(version.version) == "1"
    # Every trainer logs its model as the run's "model": runs:/<run id>/model loads it like the alias.
    for uri in (trained.model_uri, f"runs:/{trained.run_id}/model"):
        loaded = load_model(uri)
        assert type(loaded) is type(trained.model)
        assert mlflow.pyfunc.load_model(uri).metadata.run_id == trained.run_id
