"""Next-item evaluation of the RL recommenders against plain baselines on one split (a script, not a test).

    python benchmarks/rl_eval.py [--datasets ml-latest-small ml-100k] [--seeds 0 1 2] [--threads 2]
                                 [--methods popular implicit-mf ... td3] [--epochs-scale 1.0]

Protocol (spark_recs.rl.holdout): per user, the last rating by time is the test target and the one before
it the validation row; everything earlier is training data. Every method is fitted on the training rows
only and ranks the whole catalogue (the training items) for each test user after the same prefix
(training rows + validation row), the prefix's items excluded. HR@10, nDCG@10, MRR and coverage@10 from
holdout.ranking_metrics; mean +- std over seeds (the split is fixed; seeds change initialisation,
sampling and batch order). Methods:

- popular: training counts (deterministic).
- biased-mf / implicit-mf: LensKit's explicit and implicit ALS.
- gru4rec: each user's training history as one session; scored after the prefix read as a session.
- frame-mean-mf: no learning at all: the mean MF embedding of the user's last frame (the actors' state),
  scored by dot product. What the embeddings give before any actor is trained.
- supervised-<emb>: the recnn Actor on the same FrameEnv batches, trained by MSE to the next item's
  embedding (what the actors could learn without RL).
- ddpg-<emb>, td3, bcq, reinforce: recnn's algorithms (spark_recs.rl.algos) on the FrameEnv of the training
  rows, turned into an ActorRecommender whose state is each test user's last frame of the prefix. For BCQ
  also "(generator only)": the same trained model with the perturbation switched off (phi = 0), i.e.
  the VAE's decoded action without the Q-learning part.

Embeddings (``<emb>``): ``mf`` = ImplicitMF item factors fitted on the training rows (the implicit-mf
baseline's own model), ``feat`` = PCA of TF-IDF genre (and, for ml-latest-small, tag) features. Both are
rescaled to unit RMS (one global factor: rankings by dot product do not change). Wall times taken while
other jobs shared the CPU are indicative only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_recs.data.movielens import load_ratings  # noqa: E402
from spark_recs.models.gru4rec import GRU4Rec  # noqa: E402
from spark_recs.models.mf import BiasedMF, ImplicitMF  # noqa: E402
from spark_recs.models.popular import Popular  # noqa: E402
from spark_recs.rl.embeddings import ItemEmbeddings  # noqa: E402
from spark_recs.rl.env import FrameEnv  # noqa: E402
from spark_recs.rl.holdout import (  # noqa: E402
    in_catalogue,
    next_item_holdout,
    ranking_metrics,
    session_model_scores,
    user_model_scores,
)
from spark_recs.rl.training import (  # noqa: E402
    build_algorithm,
    feature_embeddings,
    policy_nets,
    train_policy,
    train_supervised_actor,
    unit_rms,
)
from spark_recs.runtime import get_spark  # noqa: E402
from spark_recs.tasks.rl import holdout_metrics  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METRICS = ("hr@10", "ndcg_log2p1@10", "mrr", "coverage@10")

# Shared settings of every actor (printed with the table).
FRAME_SIZE = 10
BATCH_USERS = 4  # FrameEnv batch: every transition of 4 users (~600 transitions)
HIDDEN = 256
MF = {"features": 50, "iterations": 20}  # LensKit's defaults
GRU = {"layers": [100], "batch_size": 64, "n_epochs": 5, "learning_rate": 0.05, "n_sample": 1024}
# Per method: epochs and the recnn params overridden (recnn's learning rates, 1e-5, barely move in
# a few epochs of a 100k-rating data set).
ACTORS = {
    "supervised": {"epochs": 5, "lr": 1e-3},
    "ddpg": {"epochs": 5, "params": {"policy_lr": 1e-4, "value_lr": 1e-4}},
    "td3": {"epochs": 5, "params": {"policy_lr": 1e-4, "value_lr": 1e-4}},
    "bcq": {"epochs": 2, "params": {"perturbator_lr": 1e-4, "value_lr": 1e-4, "n_generator_samples": 4}},
    "reinforce": {"epochs": 2, "params": {"policy_lr": 1e-3, "beta_lr": 1e-3}},
}
METHODS = [
    "popular",
    "biased-mf",
    "implicit-mf",
    "gru4rec",
    "frame-mean-mf",
    "supervised-mf",
    "supervised-feat",
    "ddpg-mf",
    "ddpg-feat",
    "td3-mf",
    "bcq-mf",
    "reinforce-mf",
]


class Dataset:
    """One data set's split and, per seed, the models and embeddings several methods share."""

    def __init__(self, spark, name: str, scale: float) -> None:
        self.name, self.folder, self.scale = name, DATA / name, scale
        self.holdout = next_item_holdout(load_ratings(spark, self.folder).accepted)
        self.spark = spark
        self._cache: dict = {}

    def epochs(self, method: str) -> int:
        return max(1, round(ACTORS[method]["epochs"] * self.scale))

    def cached(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def implicit_mf(self, seed: int) -> ImplicitMF:
        return self.cached(("imf", seed), lambda: ImplicitMF(**MF, seed=seed).fit(self.holdout.train))

    def embeddings(self, kind: str, seed: int) -> ItemEmbeddings:
        if kind == "mf":
            return self.cached(
                ("emb", kind, seed), lambda: unit_rms(ItemEmbeddings.from_model(self.implicit_mf(seed)))
            )
        # ml-100k has 19 genres and no tags: at most 19 dimensions.
        dim = 32 if self.name != "ml-100k" else 16
        return self.cached(
            ("emb", kind, seed), lambda: unit_rms(feature_embeddings(self.spark, str(self.folder), dim, seed))
        )

    def env(self, kind: str, seed: int) -> FrameEnv:
        """A fresh environment per method: its loaders' shuffles then do not depend on the methods before."""
        # test_size 0: every training user trains the policy; the holdout is the test.
        return FrameEnv(
            self.embeddings(kind, seed),
            self.holdout.train,
            frame_size=FRAME_SIZE,
            batch_size=BATCH_USERS,
            test_size=0.0,
            min_seq_size=FRAME_SIZE,
            missing_items="drop",
            seed=seed,
        )

    def forget(self, seed: int) -> None:
        self._cache = {k: v for k, v in self._cache.items() if k[-1] != seed}


def run_method(data: Dataset, method: str, seed: int) -> dict[str, dict]:
    """Metrics by row label: the method's, and for bcq also its generator alone (perturbation off)."""
    holdout = data.holdout
    if method == "popular":
        return {method: ranking_metrics(user_model_scores(Popular().fit(holdout.train), holdout), holdout)}
    if method == "biased-mf":
        model = BiasedMF(**MF, seed=seed).fit(holdout.train)
        return {method: ranking_metrics(user_model_scores(model, holdout), holdout)}
    if method == "implicit-mf":
        return {method: ranking_metrics(user_model_scores(data.implicit_mf(seed), holdout), holdout)}
    if method == "gru4rec":
        sessions = holdout.train.rename(columns={"user": "SessionId", "item": "ItemId", "timestamp": "Time"})
        model = GRU4Rec(**GRU, seed=seed).fit(sessions, compatibility_mode=False)
        return {method: ranking_metrics(session_model_scores(model, holdout), holdout)}
    if method == "frame-mean-mf":
        return {method: ranking_metrics(frame_mean_scores(data.embeddings("mf", seed), holdout), holdout)}
    name, kind = method.split("-")
    env, embeddings = data.env(kind, seed), data.embeddings(kind, seed)
    spec = ACTORS[name]
    if name == "supervised":
        actor, _ = train_supervised_actor(env, HIDDEN, data.epochs(name), seed, lr=spec["lr"], progress=False)
        nets = {"actor": actor}
    else:
        algo = build_algorithm(name, env, hidden_size=HIDDEN, seed=seed, **spec["params"])
        train_policy(env, algo, data.epochs(name), progress=False)
        nets = policy_nets(algo)
    results = {method: holdout_metrics(nets, embeddings, holdout, frame_size=FRAME_SIZE)}
    if name == "bcq":
        nets["perturbator"].phi = 0.0  # the generator's decoded action, unperturbed
        results[f"{method} (generator only)"] = holdout_metrics(
            nets, embeddings, holdout, frame_size=FRAME_SIZE
        )
    return results


def frame_mean_scores(embeddings: ItemEmbeddings, holdout) -> torch.Tensor:
    """No learning: the mean embedding of each test user's last frame, scored by dot product."""
    means = []
    for prefix in holdout.prefixes:
        rows = embeddings.indices(holdout.catalogue.ids[prefix])
        means.append(embeddings.vectors[rows[rows >= 0][-FRAME_SIZE:]].mean(dim=0))
    return in_catalogue(torch.stack(means) @ embeddings.vectors.T, embeddings.vocab, holdout)


def table(results: pd.DataFrame) -> str:
    """Markdown: one row per data set and method, mean +- std over seeds, and the mean seconds."""
    lines = [
        "| data set | method | " + " | ".join(METRICS) + " | seconds |",
        "|---|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for (dataset, method), group in results.groupby(["dataset", "method"], sort=False):
        cells = [
            f"{group[m].mean():.4f} ± {group[m].std(ddof=1) if len(group) > 1 else 0:.4f}" for m in METRICS
        ]
        lines.append(f"| {dataset} | {method} | " + " | ".join(cells) + f" | {group['seconds'].mean():.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["ml-latest-small", "ml-100k"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every actor's epochs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    spark = get_spark(conf={"spark.sql.shuffle.partitions": "4"})
    print(
        f"settings: seeds {args.seeds}; torch {torch.__version__}, {args.threads} threads; actors: frame "
        f"{FRAME_SIZE}, batch {BATCH_USERS} users, hidden {HIDDEN}; MF {MF}; GRU4Rec {GRU}; "
        f"epochs x{args.epochs_scale:g} of {ACTORS}",
        flush=True,
    )
    rows = []
    for name in args.datasets:
        data = Dataset(spark, name, args.epochs_scale)
        h = data.holdout
        print(
            f"{name}: {len(h.train):,} training rows, {len(h.users)} test users, catalogue {len(h.catalogue):,} "
            f"items, {int((h.targets < 0).sum())} targets outside it (misses for every method)",
            flush=True,
        )
        for seed in args.seeds:
            for method in args.methods:
                start = time.perf_counter()
                results = run_method(data, method, seed)
                seconds = time.perf_counter() - start
                for label, metrics in results.items():
                    rows.append(
                        {"dataset": name, "method": label, "seed": seed, **metrics, "seconds": seconds}
                    )
                    print(
                        f"  {name} seed {seed} {label:<28} "
                        + " ".join(f"{m} {metrics[m]:.4f}" for m in METRICS)
                        + f" ({seconds:.1f}s)",
                        flush=True,
                    )
            data.forget(seed)
    print(f"\ntotal {time.perf_counter() - started:.0f}s\n")
    print(table(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
