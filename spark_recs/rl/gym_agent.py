"""PPO on the MovieLens rating Gym, plain baselines on the same rows, MLflow logging and registration.

The ``kind: gym`` job (:mod:`spark_recs.tasks.gym`, ``spark-recs train --config conf/gym.yaml``) loads a
split, trains Stable-Baselines3's PPO (an MLP of two 64-unit tanh layers) on the training rows through
:class:`~spark_recs.rl.gym.MovieLensRatingVecEnv`, and scores it with the baselines on the test rows:

- ``ppo``: the policy's most likely rating; its expected rating is the mean under the policy;
- ``always_4``; ``global_mean`` (the training mean, rounded; 4 on ml-100k);
- ``bias_rounded``: :class:`~spark_recs.models.bias.Bias` clipped to 1..5 and rounded;
- ``supervised_mlp``: the same MLP trained with cross-entropy on the training rows' ratings, answering the
  rating with the highest expected reward under its predicted distribution.

For each: exact ``accuracy``, ``mean_reward``, ``rmse``/``mae`` of the chosen rating, ``rmse_expected``/
``mae_expected`` of the expected (unrounded) rating, and ``share_1`` .. ``share_5``, the distribution of the
chosen ratings (a policy that collapses to one rating shows there).

The registered model is a :class:`RatingPolicy`: the policy network rebuilt in plain torch plus the feature
tables, saved without pickle. This module imports Stable-Baselines3, Gymnasium and MLflow only where they
are used, so loading a registered policy needs only torch, numpy and pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from spark_recs.models.base import Model
from spark_recs.models.vocabulary import Vocabulary

if TYPE_CHECKING:
    from spark_recs.rl.gym import RatingData

N_RATINGS = 5
METRICS = ("accuracy", "mean_reward", "rmse", "mae", "rmse_expected", "mae_expected")


def policy_network(n_features: int, hidden: list[int]) -> torch.nn.Sequential:
    """``n_features`` -> tanh layers of ``hidden`` units -> 5 rating logits (SB3's ``MlpPolicy`` actor)."""
    layers: list[torch.nn.Module] = []
    width = n_features
    for units in hidden:
        layers += [torch.nn.Linear(width, units), torch.nn.Tanh()]
        width = units
    layers.append(torch.nn.Linear(width, N_RATINGS))
    return torch.nn.Sequential(*layers)


def _probabilities(network: torch.nn.Sequential, observations: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = network(torch.as_tensor(np.asarray(observations, dtype=np.float32)))
        return torch.softmax(logits.double(), dim=1).numpy()


class RatingPolicy(Model):
    """A rating policy for (user, item) pairs: a :func:`policy_network` and the feature tables of its split.

    :meth:`predict_frame` answers a ``user, item`` frame with ``prediction``, the most likely rating (NaN for
    a user or item the tables lack), which is what ``mlflow.pyfunc.load_model(uri).predict`` returns.
    """

    def __init__(self, hidden=(64, 64)) -> None:
        self.hidden = [int(units) for units in hidden]
        self.network: torch.nn.Sequential | None = None
        self.user_vocab: Vocabulary | None = None
        self.item_vocab: Vocabulary | None = None
        self.user_features: np.ndarray | None = None
        self.item_features: np.ndarray | None = None

    @classmethod
    def build(cls, network: torch.nn.Sequential, data: RatingData, hidden: list[int]) -> RatingPolicy:
        """A policy from a trained network (of :func:`policy_network`'s shape) and the split's tables."""
        policy = cls(hidden)
        policy.network = network
        policy.user_vocab, policy.item_vocab = Vocabulary(data.user_ids), Vocabulary(data.item_ids)
        policy.user_features, policy.item_features = data.user_features, data.item_features
        return policy

    def state(self) -> dict:
        if self.network is None:
            raise RuntimeError("this RatingPolicy has no network yet: build it from a trained one")
        return {
            **self.user_vocab.state("user"),
            **self.item_vocab.state("item"),
            "user_features": torch.from_numpy(self.user_features),
            "item_features": torch.from_numpy(self.item_features),
            **{f"network.{key}": value for key, value in self.network.state_dict().items()},
        }

    @classmethod
    def from_state(cls, config: dict, state: dict) -> RatingPolicy:
        policy = cls(**config)
        policy.user_vocab = Vocabulary.from_state(state, "user")
        policy.item_vocab = Vocabulary.from_state(state, "item")
        policy.user_features = state["user_features"].numpy()
        policy.item_features = state["item_features"].numpy()
        n_features = policy.user_features.shape[1] + policy.item_features.shape[1]
        policy.network = policy_network(n_features, policy.hidden)
        prefix = "network."
        policy.network.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
        return policy

    def observe(self, users, items) -> tuple[np.ndarray, np.ndarray]:
        """Observations of the known pairs among raw ``users``/``items`` and the mask of known pairs.

        The layout is :meth:`~spark_recs.rl.gym.RatingData.observe`'s: user mean, movie columns, the rest of
        the user columns.
        """
        u, i = self.user_vocab.indices(users), self.item_vocab.indices(items)
        known = (u >= 0) & (i >= 0)
        user_part, item_part = self.user_features[u[known]], self.item_features[i[known]]
        return np.concatenate([user_part[:, :1], item_part, user_part[:, 1:]], axis=1), known

    def probabilities(self, observations: np.ndarray) -> np.ndarray:
        """``(n, 5)`` float64 probabilities of ratings 1..5 for float32 observations."""
        return _probabilities(self.network, observations)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``prediction`` (the most likely rating) for each ``user, item`` row, aligned with ``frame``."""
        missing = [c for c in ("user", "item") if c not in frame.columns]
        if missing:
            raise ValueError(
                f"a RatingPolicy answers user, item pairs: the input lacks {missing} (has {list(frame.columns)})"
            )
        observations, known = self.observe(frame["user"].to_numpy(), frame["item"].to_numpy())
        prediction = np.full(len(frame), np.nan)
        if known.any():
            prediction[known] = self.probabilities(observations).argmax(axis=1) + 1
        return pd.DataFrame({"prediction": prediction}, index=frame.index)

    def input_example(self) -> pd.DataFrame:
        return pd.DataFrame({"user": self.user_vocab.ids[:2], "item": self.item_vocab.ids[:2]})


# ---- evaluation --------------------------------------------------------------------------------------


def score(ratings, chosen, expected) -> dict:
    """Metrics of chosen ratings (and expected ratings) against the true ``ratings`` (see the module doc)."""
    from spark_recs.evaluation.accuracy import mae, rmse
    from spark_recs.rl.gym import reward

    ratings = np.asarray(ratings, dtype=np.float64)
    chosen = np.asarray(chosen, dtype=np.float64)
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), ratings.shape)
    shares = np.bincount(chosen.astype(np.int64), minlength=N_RATINGS + 1)[1:] / len(ratings)
    return {
        "rows": len(ratings),
        "accuracy": float(np.mean(chosen == ratings)),
        "mean_reward": float(reward(chosen, ratings).mean()),
        "rmse": rmse(chosen, ratings),
        "mae": mae(chosen, ratings),
        "rmse_expected": rmse(expected, ratings),
        "mae_expected": mae(expected, ratings),
        **{f"share_{k + 1}": float(share) for k, share in enumerate(shares)},
    }


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), 1, N_RATINGS)


def _expected(probabilities: np.ndarray) -> np.ndarray:
    return probabilities @ np.arange(1, N_RATINGS + 1)


def fit_supervised(
    observations: np.ndarray,
    ratings: np.ndarray,
    hidden: list[int],
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> torch.nn.Sequential:
    """A :func:`policy_network` trained with cross-entropy (Adam, shuffled mini-batches) to predict ratings."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = policy_network(observations.shape[1], hidden)
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    x = torch.from_numpy(np.asarray(observations, dtype=np.float32))
    y = torch.from_numpy(np.asarray(ratings, dtype=np.int64) - 1)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = torch.nn.functional.cross_entropy(network(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return network


def baselines(data: RatingData, config: dict, hidden: list[int], seed: int) -> dict[str, tuple]:
    """``{method: (chosen ratings, expected ratings)}`` of the baselines on ``data``'s test rows."""
    from spark_recs.models.bias import Bias
    from spark_recs.rl.gym import reward

    test = data.test
    n = len(test)
    bias = Bias(damping=config["bias_damping"]).fit(data.train[["user", "item", "rating"]])
    bias_rating = np.clip(
        bias.predict_pairs(bias.user_vocab.indices(test["user"]), bias.item_vocab.indices(test["item"])),
        1,
        N_RATINGS,
    )
    network = fit_supervised(
        data.observations("train"),
        data.train["rating"].to_numpy(),
        hidden,
        epochs=config["mlp_epochs"],
        learning_rate=config["mlp_learning_rate"],
        batch_size=config["mlp_batch_size"],
        seed=seed,
    )
    probabilities = _probabilities(network, data.observations("test"))
    stars = np.arange(1, N_RATINGS + 1)
    expected_reward = probabilities @ reward(stars[:, None], stars[None, :]).T
    return {
        "always_4": (np.full(n, 4.0), np.full(n, 4.0)),
        "global_mean": (np.full(n, _rounded(data.global_mean)), np.full(n, data.global_mean)),
        "bias_rounded": (_rounded(bias_rating), bias_rating),
        "supervised_mlp": (expected_reward.argmax(axis=1) + 1.0, _expected(probabilities)),
    }


def evaluate(data: RatingData, policy: RatingPolicy, baseline_config: dict, seed: int) -> pd.DataFrame:
    """One row per method (``ppo`` and the baselines) of :func:`score` on ``data``'s test rows."""
    probabilities = policy.probabilities(data.observations("test"))
    methods = {
        "ppo": (probabilities.argmax(axis=1) + 1.0, _expected(probabilities)),
        **baselines(data, baseline_config, policy.hidden, seed),
    }
    ratings = data.test["rating"].to_numpy()
    return pd.DataFrame(
        [{"method": name, **score(ratings, *predictions)} for name, predictions in methods.items()]
    )


# ---- PPO ---------------------------------------------------------------------------------------------


def _sb3_env(walks):
    """``walks`` (a :class:`~spark_recs.rl.gym.MovieLensRatingVecEnv`) behind SB3's ``VecEnv`` interface.

    (Defined inside a function, as the callback below, so that importing this module needs no SB3.)
    """
    from stable_baselines3.common.vec_env import VecEnv

    class Walks(VecEnv):
        def __init__(self) -> None:
            super().__init__(walks.num_envs, walks.single_observation_space, walks.single_action_space)
            self.actions = None

        def reset(self):
            observations, _ = walks.reset(seed=self._seeds[0])
            self._reset_seeds()
            return observations

        def step_async(self, actions) -> None:
            self.actions = actions

        def step_wait(self):
            observations, rewards, terminated, truncated, info = walks.step(self.actions)
            dones = terminated | truncated
            infos = [{} for _ in range(self.num_envs)]
            for k in np.flatnonzero(dones):
                infos[k] = {
                    "terminal_observation": info["final_obs"][k],
                    "TimeLimit.truncated": bool(truncated[k]),
                }
            return observations, rewards.astype(np.float32), dones, infos

        def close(self) -> None:
            walks.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(walks, attr_name) for _ in self._get_indices(indices)]

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(walks, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [getattr(walks, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._get_indices(indices)]

    return Walks()


def _training_log(total_timesteps: int, progress: bool):
    """An SB3 callback: progress over the steps (:class:`~spark_recs.progress.Progress`), and per rollout
    the mean reward and exact-match share."""
    from stable_baselines3.common.callbacks import BaseCallback

    from spark_recs.progress import Progress

    class TrainingLog(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.curve: list[tuple[int, float, float]] = []
            self.bar = None

        def _on_training_start(self) -> None:
            self.bar = Progress(total_timesteps, "PPO", "steps", enabled=progress)

        def _on_step(self) -> bool:
            latest = {"reward": self.curve[-1][1], "exact": self.curve[-1][2]} if self.curve else {}
            self.bar.update(self.training_env.num_envs, **latest)
            return True

        def _on_rollout_end(self) -> None:
            rewards = self.model.rollout_buffer.rewards
            self.curve.append((self.num_timesteps, float(rewards.mean()), float((rewards == 1).mean())))

        def _on_training_end(self) -> None:
            self.bar.close()

    return TrainingLog()


def train_ppo(data: RatingData, env_config: dict, ppo_config: dict, *, progress: bool = True):
    """PPO trained on ``data``'s training rows; returns ``(the SB3 model, [(step, mean reward, exact share)])``,
    one curve point per rollout."""
    from stable_baselines3 import PPO

    from spark_recs.rl.gym import MovieLensRatingVecEnv

    settings = dict(ppo_config)
    hidden, seed, total = settings.pop("hidden"), settings.pop("seed"), settings.pop("total_timesteps")
    settings.pop("threads", None)
    walks = MovieLensRatingVecEnv(
        env_config["n_envs"], data=data, part="train", episode_length=env_config["episode_length"]
    )
    agent = PPO(
        "MlpPolicy",
        _sb3_env(walks),
        policy_kwargs={"net_arch": {"pi": list(hidden), "vf": list(hidden)}, "activation_fn": torch.nn.Tanh},
        seed=seed,
        device="cpu",
        **settings,
    )
    log = _training_log(total, progress)
    agent.learn(total_timesteps=total, callback=log)
    return agent, log.curve


def policy_from_ppo(agent, data: RatingData, hidden: list[int]) -> RatingPolicy:
    """The actor of an SB3 ``MlpPolicy`` copied into a plain :func:`policy_network` (same outputs)."""
    network = policy_network(data.user_features.shape[1] + data.item_features.shape[1], hidden)
    source = [m for m in agent.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    target = [m for m in network if isinstance(m, torch.nn.Linear)]
    for mine, theirs in zip(target, [*source, agent.policy.action_net], strict=True):
        mine.load_state_dict(theirs.state_dict())
    return RatingPolicy.build(network, data, hidden)
