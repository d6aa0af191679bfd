"""The RL job (``kind: rl``): a recnn-style actor (DDPG, TD3, BCQ, REINFORCE) trained on a ratings source.

``train`` loads the ratings, derives item embeddings, builds a :class:`~spark_recs.rl.env.FrameEnv` and the
algorithm, trains with per-epoch train/test losses logged to MLflow, turns the trained policy into an
:class:`~spark_recs.rl.recommender.ActorRecommender`, optionally scores it on the per-user temporal holdout
of :mod:`spark_recs.rl.holdout`, and logs and registers it. Everything random is drawn from ``env.seed``:
the user split, the batch order, the networks' initialisation, the algorithm's generator, the embeddings'
PCA or factorisation.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from spark_recs.core.params import FRACTION, NUMBER, POSITIVE_INT, Rule
from spark_recs.rl.algos import Algo, MLflowWriter
from spark_recs.rl.embeddings import ItemEmbeddings
from spark_recs.rl.env import FrameEnv
from spark_recs.rl.holdout import (
    NextItemHoldout,
    holdout_of_rows,
    next_item_holdout,
    ranking_metrics,
    user_model_scores,
)
from spark_recs.rl.recommender import ActorRecommender
from spark_recs.rl.training import (
    NET_PARAMS,
    build_algorithm,
    feature_embeddings,
    policy_nets,
    train_policy,
    unit_rms,
)

from .base import (
    Section,
    Trained,
    flat,
    mlflow_section,
    mlflow_settings,
    no_prepared_input,
    note,
    promote_with,
    promotion_section,
    section,
)
from .tuning import (
    Tuned,
    log_test_metrics,
    search_copies,
    settings_of,
    space_shape,
    without_search,
)

#: The sections of an RL config besides those of the algorithms.
SECTIONS: dict[str, Section] = {
    "data": {
        "ratings": ("../shared/data/ml-latest-small", Rule(str, source=True)),  # folder, file, path or table
        "items": (None, Rule(str, nullable=True, source=True)),  # MovieLens folder of features; null: ratings
        "user_key": ("user", Rule(str)),  # column names of a ratings file or table
        "item_key": ("item", Rule(str)),
        "rating_key": ("rating", Rule(str)),
        "time_key": ("timestamp", Rule(str)),
    },
    "embeddings": {
        "source": ("features", Rule(str, choices=("features", "mf", "file"))),
        "dim": (32, POSITIVE_INT),
        "path": (None, Rule(str, nullable=True, source=True)),
        "mf_iterations": (20, POSITIVE_INT),
    },
    "env": {
        "frame_size": (10, POSITIVE_INT),
        "batch_size": (25, POSITIVE_INT),
        "test_size": (0.05, FRACTION),
        "min_seq_size": (10, POSITIVE_INT),
        "rating_center": (2.5, Rule(NUMBER)),
        "rating_scale": (2.0, Rule(NUMBER, 0, None)),
        "missing_items": ("error", Rule(str, choices=("error", "drop"))),
        "seed": (42, Rule(int, 0)),
    },
    "algorithm": {
        "name": ("ddpg", Rule(str, choices=("ddpg", "td3", "bcq", "reinforce"))),
        "hidden_size": (256, POSITIVE_INT),
    },
    "training": {
        "epochs": (10, POSITIVE_INT),
        "log_every": (100, POSITIVE_INT),  # per-update losses logged every that many updates
        "device": ("cpu", Rule(str)),
    },
    "recommender": {"scoring": ("dot", Rule(str, choices=("dot", "cosine")))},
    "evaluation": {
        "holdout": (False, Rule(bool)),
        "k": (10, POSITIVE_INT),
        "min_rows": (3, Rule(int, 3)),
    },
    "mlflow": mlflow_section("spark_recs-rl", "spark_recs-rl"),
    # The champion/challenger gate of `promote`, judged on the temporal holdout at evaluation.k.
    "promotion": promotion_section("ndcg_log2p1@10"),
}


#: Each algorithm's update parameters (its config section), by ``algorithm.name``.
ALGORITHM_PARAMS = {
    "ddpg": ("DDPG",),
    "td3": ("TD3",),
    "bcq": ("BCQ", "BCQNetworkParams"),
    "reinforce": ("Reinforce",),
}
#: The holdout metric a search's ``tune.metric`` names (``ndcg`` is :func:`ranking_metrics`' log2(1 + rank)).
SEARCH_METRICS = {"hit": "hr", "ndcg": "ndcg_log2p1"}


def _declarations(name: str) -> list:
    from spark_recs.rl import algos

    return [getattr(algos, declared) for declared in ALGORITHM_PARAMS[name]]


def schema() -> dict[str, Section | Callable]:
    """The ``kind: rl`` schema: :data:`SECTIONS`, then one section per algorithm with the update parameters
    it declares (recnn's defaults), of which only the section of ``algorithm.name`` is used, then what
    ``tune`` reads: its settings (``tune``, optimising ``ndcg@10`` by default) and ``search_space``."""
    from spark_recs.tuning.search import SearchParams

    algorithms = {name: {} for name in ALGORITHM_PARAMS}
    for name in ALGORITHM_PARAMS:
        for declared in _declarations(name):
            algorithms[name] |= section(declared)
    return (
        SECTIONS
        | algorithms
        | {
            "tune": section(SearchParams) | {"metric": ("ndcg@10", Rule(str))},
            "search_space": space_shape,
        }
    )


def load_ratings(spark, config: dict):
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


def train(
    spark,
    config: dict,
    prepared: str | None = None,
    *,
    experiment: str | None = None,
    register_as: str | None = None,
    alias: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> Trained:
    """Train, evaluate, log and register the RL recommender a ``kind: rl`` config describes.

    With ``evaluation.holdout`` the policy (and MF embeddings) see only the holdout's training rows and the
    run logs ``holdout_*`` ranking metrics (the result's ``evaluation``); the registered recommender always
    starts from each user's full history. Logged: the flattened config as params, per-update and per-epoch
    losses as step metrics, the embeddings (``embeddings/item_embeddings.parquet``), and the recommender,
    registered as ``mlflow.registered_model`` with ``mlflow.alias`` (null name: logged only);
    ``experiment``, ``register_as`` and ``alias`` override those settings. The result's ``trainer`` is the
    trained :class:`~spark_recs.rl.algos.Algo`.
    """
    import mlflow

    from spark_recs.progress import Steps
    from spark_recs.serving.registry import log_and_register
    from spark_recs.tracking import log_metrics_clean, log_params_flat, tracked_run

    no_prepared_input("rl", prepared)
    tracking = mlflow_settings(config, experiment, register_as, alias)
    evaluation, name = config["evaluation"], config["algorithm"]["name"]
    steps = Steps(5 if evaluation["holdout"] else 4)
    data = {"ratings": config["data"]["ratings"]}
    run_name = tracking["run_name"]
    with tracked_run(
        tracking["experiment"], run_name, tracking_uri=tracking_uri, spark=spark, data=data
    ) as run:
        log_params_flat(flat(config | {"mlflow": tracking}))
        mlflow.set_tags({"kind": "rl", "algorithm": name})
        with steps.step(f"load ratings from {config['data']['ratings']}", "load"):
            validated = load_ratings(spark, config)
            ratings = train_rows = validated.accepted
            holdout = None
            if evaluation["holdout"]:
                holdout = next_item_holdout(ratings, min_rows=evaluation["min_rows"])
                train_rows = holdout.train
        with steps.step(f"build {config['embeddings']['source']} embeddings and the environment", "build"):
            embeddings = build_embeddings(spark, config, train_rows)
            env = build_env(config, embeddings, train_rows, spark)
            algo = algorithm_from_config(config, env)
        log_params_flat(
            {
                "rejected_rows": validated.n_rejected,
                "train_rows": len(env.items),
                "train_users": len(env.train_users),
                "test_users": len(env.test_users),
                "excluded_users": env.excluded_users,
                "items": len(embeddings),
            }
        )
        with steps.step(f"train {name} for {config['training']['epochs']} epochs", "train"):
            history = train_policy(env, algo, config["training"]["epochs"], progress=progress)
        scores = None
        if holdout is not None:
            with steps.step(f"evaluate on the temporal holdout ({len(holdout.users)} users)", "evaluate"):
                metrics = policy_holdout_metrics(algo, embeddings, holdout, config, evaluation["k"])
                log_metrics_clean({f"holdout_{k}": v for k, v in metrics.items()})
                scores = pd.DataFrame([metrics])
        with steps.step("log the embeddings, log and register the recommender", "register"):
            recommender = recommender_for(algo, embeddings, ratings, config)
            with tempfile.TemporaryDirectory(prefix="spark_recs_embeddings_") as scratch:
                mlflow.log_artifact(
                    str(embeddings.save(Path(scratch) / "item_embeddings.parquet")), "embeddings"
                )
            logged = log_and_register(
                recommender, registered_model=tracking["registered_model"], alias=tracking["alias"]
            )
    history = pd.DataFrame(history)
    return Trained(recommender, run.info.run_id, logged.uri, logged.version, history, scores, trainer=algo)


def policy_holdout_metrics(
    algo: Algo, embeddings: ItemEmbeddings, holdout: NextItemHoldout, config: dict, k: int
) -> dict[str, float]:
    """:func:`holdout_metrics` of a trained ``algo`` with the config's ``env`` and ``recommender`` settings."""
    env = config["env"]
    return holdout_metrics(
        policy_nets(algo),
        embeddings,
        holdout,
        frame_size=env["frame_size"],
        scoring=config["recommender"]["scoring"],
        rating_center=env["rating_center"],
        rating_scale=env["rating_scale"],
        k=k,
    )


def holdout_metrics(
    nets: dict[str, torch.nn.Module],
    embeddings: ItemEmbeddings,
    holdout: NextItemHoldout,
    *,
    frame_size: int,
    scoring: str = "dot",
    rating_center: float = 2.5,
    rating_scale: float = 2.0,
    k: int = 10,
) -> dict[str, float]:
    """``hr@k``, ``ndcg_log2p1@k``, ``mrr`` and the beyond-accuracy figures at ``k`` of a trained policy
    (``nets`` as for :meth:`ActorRecommender.from_policy`) on a
    :class:`~spark_recs.rl.holdout.NextItemHoldout`: each test user's state is the last frame of its prefix
    (training rows, then the validation row); ``diversity@k`` is over the ``embeddings`` the policy acts on
    (so not comparable between models with embeddings of their own, and no promotion guard)."""

    model = ActorRecommender.from_policy(
        nets,
        embeddings,
        holdout.prefix_frame.rename(columns={"position": "timestamp"}),
        frame_size=frame_size,
        scoring=scoring,
        rating_center=rating_center,
        rating_scale=rating_scale,
    )
    vectors = pd.DataFrame({"item": embeddings.ids, "vector": list(embeddings.vectors.double().numpy())})
    return ranking_metrics(user_model_scores(model, holdout), holdout, k=k, item_vectors=vectors)


# ---- tune ---------------------------------------------------------------------------------------------


def check_tune(config: dict):
    """The search space over the parameters of ``algorithm.name`` (its config section), with the ``tune``
    settings checked (before Spark starts); ``tune.metric`` is ``ndcg@k`` or ``hit@k`` of the holdout."""
    from spark_recs.core.params import ConfigError
    from spark_recs.tuning.search import check_settings
    from spark_recs.tuning.space import configured_space

    name = config["algorithm"]["name"]
    space = configured_space(config["search_space"], config["tune"]["space"], tuple(_declarations(name)))
    check_settings(config["tune"], space)
    metric, _, k = config["tune"]["metric"].lower().partition("@")
    if metric not in SEARCH_METRICS or not k.isdigit() or int(k) < 1:
        raise ConfigError(
            f"tune.metric: an RL recommender is scored with {[f'{m}@k' for m in SEARCH_METRICS]} on the "
            f"validation rows, not {config['tune']['metric']!r}"
        )
    return space


def metric_key(metric: str) -> tuple[str, int]:
    """The :func:`ranking_metrics` key and cutoff of a search's ``tune.metric`` (``ndcg@10`` ->
    ``ndcg_log2p1@10``, 10)."""
    name, _, k = metric.lower().partition("@")
    return f"{SEARCH_METRICS[name]}@{k}", int(k)


@dataclass(frozen=True)
class RLObjective:
    """What a trial of an RL search trains: the config's algorithm with a trial's parameters (in its
    section), on the train rows (every user's ratings but the last two) from the item embeddings of the
    search, scored after every epoch on each user's next rating (the validation row) from its train
    rows: ``tune.metric`` of :func:`ranking_metrics`. It never reads the test rows (the last ratings)."""

    train: str
    valid: str
    embeddings: str
    config: dict
    metric: str

    @property
    def inputs(self) -> list[str]:
        return [self.train, self.valid, self.embeddings]

    def __call__(self, params: dict, report) -> float:
        from spark_recs.tuning.objectives import read_input

        name = self.config["algorithm"]["name"]
        config = self.config | {name: self.config[name] | params}
        train, valid = read_input(self.train), read_input(self.valid)
        embeddings = ItemEmbeddings.from_file(self.embeddings)
        env = build_env(config, embeddings, train)
        algo = algorithm_from_config(config, env)
        holdout = holdout_of_rows(train, train, valid)
        key, k = metric_key(self.metric)
        for epoch in range(1, config["training"]["epochs"] + 1):
            losses = train_policy(env, algo, 1, progress=False)[0]
            metrics = policy_holdout_metrics(algo, embeddings, holdout, config, k)
            losses = {n: v for n, v in losses.items() if n.startswith(("train_", "test_"))}
            report(epoch, metrics[key], {f"valid_{m}": v for m, v in metrics.items()} | losses)
        return metrics[key]


def best_config(config: dict, params: dict) -> dict:
    """The RL config (its ``tune`` and ``search_space`` left out) with the parameters a search found best
    in the section of ``algorithm.name``: what ``spark-recs train`` runs."""
    best = without_search(config, "rl")
    best[config["algorithm"]["name"]].update(params)
    return best


def tune(
    spark,
    config: dict,
    *,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    train_best: bool = False,
    register_as: str | None = None,
    alias: str | None = None,
) -> Tuned:
    """Search the parameters of the config's RL algorithm: each user's ratings but the last two are the
    train rows, the one before the last the validation row, the last the test row (the holdout of
    ``evaluation.holdout``). Item embeddings are built once from the train rows; every trial trains on
    them and is scored on the validation rows, as a Spark task. The best config is written to
    ``tune.best_config``. ``train_best``: then train it as ``train`` does with the holdout (the validation
    row joins each user's history), score it once on the test rows, log and register it."""
    from spark_recs.data.split import temporal_holdout
    from spark_recs.progress import Steps

    settings = settings_of(config, experiment)
    space = check_tune(config | {"tune": settings})
    validated = load_ratings(spark, config)
    note(validated.summary())
    train_rows, valid_rows, _ = temporal_holdout(
        validated.accepted, min_rows=config["evaluation"]["min_rows"]
    )
    steps = Steps(4 if train_best else 3)

    def objective(paths: dict[str, str]) -> RLObjective:
        # The train rows from their copy, not recomputed: the holdout's window ran once, for the copy.
        embeddings = build_embeddings(spark, config, pd.read_parquet(paths["train"]))
        saved = embeddings.save(Path(paths["train"]).parent / "item_embeddings.parquet")
        return RLObjective(paths["train"], paths["valid"], str(saved), config, settings["metric"])

    tags = {"input": config["data"]["ratings"], "model": config["algorithm"]["name"]}
    frames = {"train": train_rows, "valid": valid_rows}
    best_of = functools.partial(best_config, config)
    tuned, best = search_copies(
        spark, frames, objective, space, settings, best_of, steps, tracking_uri=tracking_uri, tags=tags
    )
    if not train_best:
        return tuned
    with steps.step("Train the best config with the holdout, score it once on the test rows"):
        best["evaluation"]["holdout"] = True
        best["evaluation"]["k"] = metric_key(settings["metric"])[1]
        trained = train(
            spark,
            best,
            experiment=settings["experiment"],
            register_as=register_as,
            alias=alias,
            tracking_uri=tracking_uri,
            progress=False,
        )
        tested = trained.evaluation.iloc[0].to_dict()
        log_test_metrics(tuned.run_id, tested)
    return replace(tuned, trained=trained, test_metrics=tested)


# ---- promote ------------------------------------------------------------------------------------------

#: The holdout figures :func:`holdout_metrics` gives at ``k`` (besides ``mrr`` and the counts).
HOLDOUT_METRICS = ("hr", "ndcg_log2p1", "coverage", "gini", "novelty", "popularity", "personalisation")


def check_promotion(config: dict) -> None:
    """The ``promotion`` metrics checked against what the holdout measures at ``evaluation.k``."""
    from spark_recs.core.params import ConfigError
    from spark_recs.serving.promotion import parse_guards

    settings, k = config["promotion"], config["evaluation"]["k"]
    measured = [f"{m}@{k}" for m in HOLDOUT_METRICS] + ["mrr"]
    for name in (settings["primary"], *parse_guards(settings["guards"] or [])):
        if name not in measured:
            raise ConfigError(f"promotion: {name!r} is not measured; the holdout gives {measured}")


def promote(
    spark,
    config: dict,
    *,
    registered_model: str | None = None,
    experiment: str = "spark_recs-promote",
    tracking_uri: str | None = None,
):
    """Score ``registered_model``'s (default ``mlflow.registered_model``) ``promotion.challenger`` and
    ``promotion.champion`` recommenders on the temporal holdout of the config's ratings (each user's
    last rating from the ratings before it, as ``train`` with ``evaluation.holdout`` scores) and move the
    champion alias to the challenger when it beats the champion."""
    from spark_recs.progress import Steps
    from spark_recs.serving.references import load_reference

    check_promotion(config)
    settings, evaluation = config["promotion"], config["evaluation"]
    name = registered_model or config["mlflow"]["registered_model"]
    if not name:
        raise ValueError("promote needs --registered-model, or mlflow.registered_model in the config")
    holdout = next_item_holdout(load_ratings(spark, config).accepted, min_rows=evaluation["min_rows"])

    def score(uri: str) -> dict[str, float]:
        model = load_reference(uri, tracking_uri).model
        metrics = holdout_metrics(
            model.nets,
            ItemEmbeddings(model.item_vocab.ids, model.vectors),
            holdout,
            frame_size=model.frame_size,
            scoring=model.scoring,
            rating_center=model.rating_center,
            rating_scale=model.rating_scale,
            k=evaluation["k"],
        )
        return {k: v for k, v in metrics.items() if k not in ("users", "unknown_targets")}

    with Steps(1).step(f"Score {name}@{settings['challenger']} and @{settings['champion']} on the holdout"):
        return promote_with(
            settings,
            name,
            score,
            experiment=experiment,
            tracking_uri=tracking_uri,
            spark=spark,
            data={"ratings": config["data"]["ratings"]},
        )
