"""Training the RL recommenders: the epoch loop for any :class:`~spark_recs.rl.algos.Algo`, the supervised
actor baseline, and ``train_from_config`` for a ``kind: rl`` config (``spark-recs train``).

``train_from_config`` loads the ratings, derives item embeddings, builds a :class:`FrameEnv` and the
algorithm, trains with per-epoch train/test losses logged to MLflow, turns the trained policy into an
:class:`~spark_recs.rl.recommender.ActorRecommender`, optionally scores it on the per-user temporal
holdout of :mod:`spark_recs.rl.holdout`, and logs and registers it. Everything random is drawn from
``env.seed``: the user split, the batch order, the networks' initialisation, the algorithm's generator,
the embeddings' PCA or factorisation.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import torch
import torch.nn.functional as F

from spark_recs.core.params import declarations
from spark_recs.progress import Progress

from .algos import BCQ, DDPG, TD3, WEIGHT_DECAY, Algo, BCQNetworkParams, MLflowWriter, Reinforce
from .embeddings import ItemEmbeddings
from .env import FrameEnv
from .nets import Actor, Critic, DiscreteActor, bcqGenerator, bcqPerturbator
from .recommender import ActorRecommender

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


# ---- from a config --------------------------------------------------------------------------------


def _read_ratings(spark, config: dict):
    """The config's ``data.ratings`` (any source of :mod:`spark_recs.data.sources`) validated, its columns
    named by ``data.user_key``/``item_key``/``rating_key``/``time_key`` (a MovieLens folder's by its loader)."""
    from spark_recs.data.schema import RatingColumns
    from spark_recs.data.sources import read_ratings

    data = config["data"]
    keys = ("user_key", "item_key", "rating_key", "time_key")
    return read_ratings(
        spark,
        data["ratings"],
        "data.ratings",
        columns=RatingColumns(*(data[k] for k in keys)),
        settings={data[k]: f"data.{k}" for k in keys},
    )


def unit_rms(embeddings: ItemEmbeddings) -> ItemEmbeddings:
    """The same vectors times one factor that makes their root mean square value 1.

    Derived embeddings are tiny (ImplicitMF factors ~0.05, unit-norm PCA rows ~1/sqrt(dim)) beside the
    rescaled ratings (-4..5) in a frame state; one global factor fixes the balance without changing any
    ranking by dot product or cosine.
    """
    return ItemEmbeddings(embeddings.ids, embeddings.vectors / embeddings.vectors.pow(2).mean().sqrt())


def build_embeddings(spark, config: dict, train_rows) -> ItemEmbeddings:
    """Item embeddings as ``embeddings.source`` says: ``features`` (TF-IDF of MovieLens genres and tags,
    PCA to ``dim``), ``mf`` (the item factors of an :class:`~spark_recs.models.mf.ImplicitMF` with ``dim``
    features fitted on ``train_rows``), both scaled by :func:`unit_rms`, or ``file`` (``embeddings.path``,
    Parquet or ``.npz``, used as given)."""
    spec, seed = config["embeddings"], config["env"]["seed"]
    if spec["source"] == "file":
        if not spec["path"]:
            raise ValueError("embeddings.source: file needs embeddings.path (a .parquet or .npz file)")
        return ItemEmbeddings.from_file(spec["path"])
    if spec["source"] == "mf":
        from spark_recs.models.mf import ImplicitMF

        model = ImplicitMF(features=spec["dim"], iterations=spec["mf_iterations"], seed=seed)
        return unit_rms(ItemEmbeddings.from_model(model.fit(train_rows)))
    folder = config["data"]["items"] or config["data"]["ratings"]
    return unit_rms(feature_embeddings(spark, folder, spec["dim"], seed))


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


def build_env(config: dict, embeddings: ItemEmbeddings, train_rows, spark=None) -> FrameEnv:
    """The config's :class:`FrameEnv` over ``train_rows`` (``user, item, rating, timestamp``)."""
    env = config["env"]
    return FrameEnv(
        embeddings,
        train_rows,
        frame_size=env["frame_size"],
        batch_size=env["batch_size"],
        test_size=env["test_size"],
        min_seq_size=env["min_seq_size"],
        rating_center=env["rating_center"],
        rating_scale=env["rating_scale"],
        missing_items=env["missing_items"],
        seed=env["seed"],
        spark=spark,
    )


def algorithm_from_config(config: dict, env: FrameEnv) -> Algo:
    """The config's algorithm: ``algorithm.name`` with ``algorithm.hidden_size`` and the parameters of the
    section named like it (``ddpg:``, ``td3:``, ``bcq:``, ``reinforce:``), moved to ``training.device``."""
    name = config["algorithm"]["name"]
    section = dict(config[name])
    shape = {key: section.pop(key) for key in NET_PARAMS if key in section}
    algo = build_algorithm(
        name,
        env,
        hidden_size=config["algorithm"]["hidden_size"],
        seed=config["env"]["seed"],
        **shape,
        **section,
    )
    algo.writer = MLflowWriter(every=config["training"]["log_every"])
    return algo.to(config["training"]["device"])


def recommender_for(algo: Algo, embeddings: ItemEmbeddings, ratings, config: dict) -> ActorRecommender:
    """The trained policy as a recommender whose states are the last frames of ``ratings``' users."""
    env = config["env"]
    return ActorRecommender.from_policy(
        policy_nets(algo),
        embeddings,
        ratings,
        frame_size=env["frame_size"],
        scoring=config["recommender"]["scoring"],
        rating_center=env["rating_center"],
        rating_scale=env["rating_scale"],
    )


def holdout_metrics(
    nets: dict[str, torch.nn.Module],
    embeddings: ItemEmbeddings,
    holdout,
    *,
    frame_size: int,
    scoring: str = "dot",
    rating_center: float = 2.5,
    rating_scale: float = 2.0,
    k: int = 10,
) -> dict[str, float]:
    """``hr@k``, ``ndcg_log2p1@k``, ``mrr`` and ``coverage@k`` of a trained policy (``nets`` as for
    :meth:`ActorRecommender.from_policy`) on a :class:`~spark_recs.rl.holdout.NextItemHoldout`: each test
    user's state is the last frame of its prefix (training rows, then the validation row)."""
    from .holdout import ranking_metrics, user_model_scores

    model = ActorRecommender.from_policy(
        nets,
        embeddings,
        holdout.prefix_frame.rename(columns={"position": "timestamp"}),
        frame_size=frame_size,
        scoring=scoring,
        rating_center=rating_center,
        rating_scale=rating_scale,
    )
    return ranking_metrics(user_model_scores(model, holdout), holdout, k=k)


def _flat(config: dict) -> dict:
    return {
        f"{section}.{key}": value
        for section, values in config.items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


def train_from_config(
    config: dict, *, tracking_uri: str | None = None, spark=None, progress: bool = True
) -> dict:
    """Train, evaluate, log and register the RL recommender a ``kind: rl`` config describes.

    With ``evaluation.holdout`` the policy (and MF embeddings) see only the holdout's training rows and the
    run logs ``holdout_*`` ranking metrics; the registered recommender always starts from each user's full
    history. Logged: the flattened config as params, per-update and per-epoch losses as step metrics,
    the embeddings (``embeddings/item_embeddings.parquet``), and the recommender, registered as
    ``mlflow.registered_model`` with ``mlflow.alias`` (null name: logged only).

    Returns ``run_id``, ``model_uri``, ``model_version``, ``losses`` (the last epoch's record),
    ``history``, ``holdout`` (metrics; empty without holdout), ``recommender``, ``algo`` and ``env``.
    """
    from spark_recs.progress import Steps
    from spark_recs.runtime import get_spark
    from spark_recs.serving.registry import log_and_register
    from spark_recs.tracking import log_metrics_clean, log_params_flat, tracked_run

    spark = spark or get_spark()
    tracking, evaluation = config["mlflow"], config["evaluation"]
    name = config["algorithm"]["name"]
    steps = Steps(5 if evaluation["holdout"] else 4)
    with steps.step(f"load ratings from {config['data']['ratings']}"):
        validated = _read_ratings(spark, config)
        ratings, rejected = validated.accepted, validated.n_rejected
        holdout = None
        train_rows = ratings
        if evaluation["holdout"]:
            from .holdout import next_item_holdout

            holdout = next_item_holdout(ratings, min_rows=evaluation["min_rows"])
            train_rows = holdout.train
    with steps.step(f"build {config['embeddings']['source']} embeddings and the environment"):
        embeddings = build_embeddings(spark, config, train_rows)
        env = build_env(config, embeddings, train_rows, spark)
        algo = algorithm_from_config(config, env)
    with tracked_run(tracking["experiment"], tracking["run_name"], tracking_uri=tracking_uri) as run:
        log_params_flat(_flat(config))
        log_params_flat(
            {
                "rejected_rows": rejected,
                "train_users": len(env.train_users),
                "test_users": len(env.test_users),
                "excluded_users": env.excluded_users,
                "items": len(embeddings),
            }
        )
        mlflow.set_tags({"kind": "rl", "algorithm": name})
        with steps.step(f"train {name} for {config['training']['epochs']} epochs"):
            history = train_policy(env, algo, config["training"]["epochs"], progress=progress)
        metrics: dict[str, float] = {}
        if holdout is not None:
            with steps.step(f"evaluate on the temporal holdout ({len(holdout.users)} users)"):
                env_spec = config["env"]
                metrics = holdout_metrics(
                    policy_nets(algo),
                    embeddings,
                    holdout,
                    frame_size=env_spec["frame_size"],
                    scoring=config["recommender"]["scoring"],
                    rating_center=env_spec["rating_center"],
                    rating_scale=env_spec["rating_scale"],
                    k=evaluation["k"],
                )
                log_metrics_clean({f"holdout_{k}": v for k, v in metrics.items()})
        with steps.step("log the embeddings, log and register the recommender"):
            recommender = recommender_for(algo, embeddings, ratings, config)
            with tempfile.TemporaryDirectory(prefix="spark_recs_embeddings_") as scratch:
                mlflow.log_artifact(
                    str(embeddings.save(Path(scratch) / "item_embeddings.parquet")), "embeddings"
                )
            logged = log_and_register(
                recommender, registered_model=tracking["registered_model"], alias=tracking["alias"]
            )
    return {
        "run_id": run.info.run_id,
        "model_uri": logged.uri,
        "model_version": logged.version,
        "losses": history[-1],
        "history": history,
        "holdout": metrics,
        "recommender": recommender,
        "algo": algo,
        "env": env,
    }
