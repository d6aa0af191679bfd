"""Training the RL recommenders: the algorithms by name, the epoch loop for any
:class:`~spark_recs.rl.algos.Algo`, the supervised actor baseline and item embeddings from features. The
``kind: rl`` job built from them is :mod:`spark_recs.tasks.rl`.
"""

from __future__ import annotations

import logging
import time

import mlflow
import numpy as np
import torch
import torch.nn.functional as F

from spark_recs.core.params import declarations
from spark_recs.progress import Progress

from .algos import BCQ, DDPG, TD3, WEIGHT_DECAY, Algo, BCQNetworkParams, Reinforce
from .embeddings import ItemEmbeddings
from .env import FrameEnv
from .nets import Actor, Critic, DiscreteActor, bcqGenerator, bcqPerturbator

log = logging.getLogger(__name__)

ALGORITHMS = {"ddpg": DDPG, "td3": TD3, "bcq": BCQ, "reinforce": Reinforce}
#: Keys of a config's algorithm section that shape the networks rather than the update.
NET_PARAMS = tuple(declarations(BCQNetworkParams))


# ---- networks and algorithms ----------------------------------------------------------------------


def build_algorithm(
    name: str,
    env: FrameEnv,
    *,
    hidden_size: int = 256,
    seed: int = 0,
    latent_dim: int = BCQNetworkParams.latent_dim,
    phi: float = BCQNetworkParams.phi,
    **params,
) -> Algo:
    """The Algo ``name`` (ddpg, td3, bcq, reinforce) with fresh networks sized for ``env``.

    Networks are initialised from ``seed`` (without touching PyTorch's global generator) and the Algo's
    generator is seeded with it too: the same seed gives the same weights after the same training.
    ``latent_dim`` and ``phi`` shape BCQ's generator and perturbator; ``params`` override the Algo's
    recnn defaults (unknown names raise naming the closest one). REINFORCE's policies are softmaxes over
    every embedded item.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; use one of {list(ALGORITHMS)}")
    state, action = env.state_dim, env.action_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "ddpg":
            return DDPG(
                Actor(state, action, hidden_size), Critic(state, action, hidden_size), seed=seed, **params
            )
        if name == "td3":
            critics = Critic(state, action, hidden_size), Critic(state, action, hidden_size)
            return TD3(Actor(state, action, hidden_size), *critics, seed=seed, **params)
        if name == "bcq":
            nets = (
                bcqGenerator(state, action, latent_dim),
                bcqPerturbator(state, action, hidden_size, phi=phi),
                Critic(state, action, hidden_size),
                Critic(state, action, hidden_size),
            )
            return BCQ(*nets, seed=seed, **params)
        items = len(env.embeddings)
        return Reinforce(
            DiscreteActor(state, items, hidden_size),
            DiscreteActor(state, items, hidden_size),
            seed=seed,
            **params,
        )


def policy_nets(algo: Algo) -> dict[str, torch.nn.Module]:
    """The networks :meth:`ActorRecommender.from_policy` needs from a trained Algo."""
    if isinstance(algo, BCQ):
        return {"generator": algo.nets["generator_net"], "perturbator": algo.nets["perturbator_net"]}
    if isinstance(algo, Reinforce):
        return {"discrete": algo.nets["policy_net"]}
    return {"actor": algo.nets["policy_net"]}


# ---- training loops -------------------------------------------------------------------------------


class _Silent:
    """A writer that drops losses: test passes are logged once per epoch, as means."""

    def write(self, losses, kind, step) -> None:
        pass


def _weighted_means(totals: dict[str, float], rows: int, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{key}": value / rows for key, value in totals.items()} if rows else {}


def _accumulate(totals: dict[str, float], losses: dict, rows: int) -> None:
    for key, value in losses.items():
        if key != "step":
            totals[key] = totals.get(key, 0.0) + value * rows


def _log_epoch(record: dict) -> None:
    log.info("epoch %s", {k: round(v, 5) for k, v in record.items()})
    if mlflow.active_run() is not None:
        metrics = {f"epoch/{k}": v for k, v in record.items() if k != "epoch" and np.isfinite(v)}
        mlflow.log_metrics(metrics, step=record["epoch"])


def evaluate_losses(env: FrameEnv, algo: Algo) -> dict[str, float]:
    """The Algo's losses on every test batch (``learn=False``: no weight changes), means over transitions."""
    totals: dict[str, float] = {}
    rows = 0
    writer, algo.writer = algo.writer, _Silent()
    try:
        for batch in env.test_dataloader:
            n = len(batch["reward"])
            _accumulate(totals, algo.update(batch, learn=False), n)
            rows += n
    finally:
        algo.writer = writer
    return _weighted_means(totals, rows, "test")


def train_policy(
    env: FrameEnv,
    algo: Algo,
    epochs: int,
    *,
    progress: bool = True,
) -> list[dict]:
    """Train ``algo`` for ``epochs`` passes over ``env``'s training users; returns one record per epoch.

    A record holds ``epoch``, ``train_<loss>`` (the epoch's losses averaged over transitions) and
    ``test_<loss>`` (the test users' losses after the epoch; none when the env has no test users) and
    ``seconds``. With an active MLflow run each record is logged as ``epoch/<key>`` metrics at step
    ``epoch``; the Algo's writer logs per-update losses itself.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    history = []
    total = epochs * len(env.train_dataloader)
    with Progress(total, type(algo).__name__, "batches", enabled=progress) as bar:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            totals: dict[str, float] = {}
            rows = 0
            for batch in env.train_dataloader:
                losses = algo.update(batch, learn=True)
                algo.step()
                n = len(batch["reward"])
                _accumulate(totals, losses, n)
                rows += n
                bar.update(epoch=epoch, **{k: v for k, v in losses.items() if k != "step"})
            record = {"epoch": epoch, **_weighted_means(totals, rows, "train"), **evaluate_losses(env, algo)}
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            _log_epoch(record)
    return history


def train_supervised_actor(
    env: FrameEnv,
    hidden_size: int = 256,
    epochs: int = 10,
    seed: int = 0,
    *,
    lr: float = 1e-3,
    progress: bool = True,
) -> tuple[Actor, list[dict]]:
    """The baseline that isolates what RL adds: the same :class:`Actor` on the same FrameEnv batches,
    trained by mean squared error to the next item's embedding (``batch["action"]``).

    Optimiser as the Algos' (RAdam with decoupled weight decay) at ``lr``; dropout masks from a generator
    seeded with ``seed``, which also initialises the network. Returns the actor (in eval mode) and one
    record per epoch: ``train_mse`` (averaged over transitions, dropout on) and ``test_mse`` (the test
    users, dropout off; none without test users).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        actor = Actor(env.state_dim, env.action_dim, hidden_size)
    optimizer = torch.optim.RAdam(
        actor.parameters(), lr=lr, weight_decay=WEIGHT_DECAY, decoupled_weight_decay=True, foreach=True
    )
    generator = torch.Generator().manual_seed(seed)
    history = []
    with Progress(epochs * len(env.train_dataloader), "supervised", "batches", enabled=progress) as bar:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            actor.train()
            total, rows = 0.0, 0
            for batch in env.train_dataloader:
                loss = F.mse_loss(actor(batch["state"], generator=generator), batch["action"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch["state"])
                rows += len(batch["state"])
                bar.update(epoch=epoch, mse=loss.item())
            actor.eval()
            record = {"epoch": epoch, "train_mse": total / rows, **_supervised_test(env, actor)}
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            _log_epoch(record)
    return actor.eval(), history


def _supervised_test(env: FrameEnv, actor: Actor) -> dict[str, float]:
    total, rows = 0.0, 0
    with torch.no_grad():
        for batch in env.test_dataloader:
            total += F.mse_loss(actor(batch["state"]), batch["action"], reduction="sum").item()
            rows += batch["action"].numel()
    return {"test_mse": total / rows} if rows else {}


# ---- embeddings ------------------------------------------------------------------------------


def unit_rms(embeddings: ItemEmbeddings) -> ItemEmbeddings:
    """The same vectors times one factor that makes their root mean square value 1.

    Derived embeddings are tiny (ImplicitMF factors ~0.05, unit-norm PCA rows ~1/sqrt(dim)) beside the
    rescaled ratings (-4..5) in a frame state; one global factor fixes the balance without changing any
    ranking by dot product or cosine.
    """
    return ItemEmbeddings(embeddings.ids, embeddings.vectors / embeddings.vectors.pow(2).mean().sqrt())


def feature_embeddings(spark, folder: str, dim: int, seed: int) -> ItemEmbeddings:
    """PCA embeddings of a MovieLens folder's item genres (and ``tags.csv`` when the folder has one)."""
    from spark_recs.data.movielens import load_items, load_tags
    from spark_recs.data.sources import is_movielens

    if not is_movielens(folder):
        raise ValueError(
            f"embeddings.source: features needs item genres from a MovieLens folder, and {folder} is not one: "
            "set data.items to a MovieLens folder, or use embeddings.source: mf (or file)"
        )
    items = load_items(spark, folder).select("item", "genres")
    return ItemEmbeddings.from_features(items, dim, tags=load_tags(spark, folder), seed=seed)
