"""The Gym job (``kind: gym``): PPO on the MovieLens rating environment, scored with plain baselines on
the same test rows (:mod:`spark_recs.rl.gym_agent`), tracked in MLflow with the policy registered."""

from __future__ import annotations

import time

import mlflow
import pandas as pd
import torch

from spark_recs.core.params import NUMBER, POSITIVE_INT, Rule
from spark_recs.rl.gym_agent import METRICS, N_RATINGS, evaluate, policy_from_ppo, train_ppo

from .base import Section, Trained, flat, mlflow_section, mlflow_settings, no_prepared_input

#: Every key of a ``kind: gym`` config: the MovieLens rating Gym, PPO, the baselines, MLflow.
SCHEMA: dict[str, Section] = {
    "data": {
        "path": ("../shared/data/ml-100k", Rule(str, source=True)),
        "split": ("fold", Rule(str, choices=("fold", "temporal"))),
        "fold": (1, Rule(int, 1, 5)),
    },
    "env": {
        "n_envs": (64, POSITIVE_INT),
        "episode_length": (None, Rule(int, 1, nullable=True)),
    },
    "ppo": {
        "total_timesteps": (1_000_000, POSITIVE_INT),
        "learning_rate": (1e-3, Rule(NUMBER, 0, None)),
        "n_steps": (128, Rule(int, 2)),
        "batch_size": (1024, Rule(int, 2)),
        "n_epochs": (10, POSITIVE_INT),
        "gamma": (0.0, Rule(NUMBER, 0, 1)),
        "gae_lambda": (0.95, Rule(NUMBER, 0, 1)),
        "clip_range": (0.2, Rule(NUMBER, 0, None)),
        "ent_coef": (0.0, Rule(NUMBER, 0)),
        "vf_coef": (0.5, Rule(NUMBER, 0)),
        "max_grad_norm": (0.5, Rule(NUMBER, 0)),
        "normalize_advantage": (True, Rule(bool)),
        "hidden": ([64, 64], Rule(list, items=POSITIVE_INT)),
        "seed": (42, Rule(int, 0)),
        "threads": (1, POSITIVE_INT),
    },
    "baselines": {
        "bias_damping": (0.0, Rule(NUMBER, 0)),
        "mlp_epochs": (10, POSITIVE_INT),
        "mlp_learning_rate": (1e-3, Rule(NUMBER, 0, None)),
        "mlp_batch_size": (256, POSITIVE_INT),
    },
    "mlflow": mlflow_section("spark_recs-gym", "spark_recs-gym-policy"),
}


def schema() -> dict[str, Section]:
    """The ``kind: gym`` schema (:data:`SCHEMA`)."""
    return SCHEMA


def train(
    spark,
    config: dict,
    prepared: str | None = None,
    *,
    experiment: str | None = None,
    register_as: str | None = None,
    alias: str | None = None,
    tracking_uri: str | None = None,
) -> Trained:
    """Train and evaluate as a ``kind: gym`` config says, logged to MLflow (params, the reward curve as
    ``train_reward``/``train_accuracy`` step metrics, ``<method>_<metric>`` metrics, the evaluation table)
    with the policy registered as ``mlflow.registered_model`` with ``mlflow.alias`` (``experiment``,
    ``register_as`` and ``alias`` override them). The result's ``evaluation`` has one row per method, its
    ``history`` the curve, its ``trainer`` the SB3 PPO agent.
    """
    from spark_recs.progress import Steps
    from spark_recs.rl.gym import RatingData
    from spark_recs.serving.registry import log_and_register
    from spark_recs.tracking import log_frame, log_metrics_clean, log_params_flat, tracked_run

    no_prepared_input("gym", prepared)
    data_config, ppo_config = config["data"], config["ppo"]
    tracking = mlflow_settings(config, experiment, register_as, alias)
    threads = torch.get_num_threads()
    torch.set_num_threads(ppo_config["threads"])
    steps = Steps(4)
    try:
        data_path, run_name = data_config["path"], tracking["run_name"]
        with tracked_run(
            tracking["experiment"],
            run_name,
            tracking_uri=tracking_uri,
            spark=spark,
            data={"ratings": data_path},
        ) as run:
            log_params_flat(flat(config | {"mlflow": tracking}))
            with steps.step("load ml-100k", "load"):
                fold = data_config["fold"] if data_config["split"] == "fold" else None
                data = RatingData.load(data_path, fold=fold, split=data_config["split"], spark=spark)
            log_params_flat({"train_rows": len(data.train), "test_rows": len(data.test)})
            with steps.step(f"train PPO for {ppo_config['total_timesteps']} steps", "train"):
                agent, curve = train_ppo(data, config["env"], ppo_config)
            _log_curve(run.info.run_id, curve)
            with steps.step("evaluate PPO and the baselines on the test rows", "evaluate"):
                policy = policy_from_ppo(agent, data, ppo_config["hidden"])
                table = evaluate(data, policy, config["baselines"], ppo_config["seed"])
            metrics = {
                f"{row['method']}_{metric}": row[metric]
                for row in table.to_dict("records")
                for metric in (*METRICS, *[f"share_{k}" for k in range(1, N_RATINGS + 1)])
            }
            log_metrics_clean(metrics)
            log_frame(table, "evaluation/gym_test.csv")
            with steps.step("log and register the policy", "register"):
                logged = log_and_register(
                    policy, registered_model=tracking["registered_model"], alias=tracking["alias"]
                )
    finally:
        torch.set_num_threads(threads)
    history = pd.DataFrame(curve, columns=["step", "train_reward", "train_accuracy"])
    return Trained(policy, run.info.run_id, logged.uri, logged.version, history, table, trainer=agent)


def _log_curve(run_id: str, curve: list[tuple[int, float, float]]) -> None:
    """The training curve as step metrics ``train_reward`` and ``train_accuracy`` (MLflow batches of 1000)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key, value, now, step)
        for step, reward, exact in curve
        for key, value in (("train_reward", reward), ("train_accuracy", exact))
    ]
    for start in range(0, len(metrics), 1000):
        mlflow.MlflowClient().log_batch(run_id, metrics=metrics[start : start + 1000])
