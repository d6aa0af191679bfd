"""GRU4Rec benchmarks (a script, not a test).

    python benchmarks/gru4rec.py speed [--device cpu] [--steps 400] [--threads 1 2]
                                       [--skip-synthetic | --only-synthetic]
    python benchmarks/gru4rec.py accuracy [--seeds 1 2 3]

``speed`` prints training events/s (one thread and all cores) and evaluation events/s on rsc15_100k and on a
deterministic synthetic set (5M events, 50k items: Zipf popularity plus item-to-item transitions) for the
official RSC15 cross-entropy configuration and for ``layers=[512], batch_size=128``. Training speed is
measured over the first ``--steps`` session-parallel steps of an epoch (after the schedule and the sample
cache are built, as the reference reports it); evaluation over the rsc15 test set or 20k synthetic test events.

``accuracy`` trains on rsc15_100k ``train_full`` and evaluates on ``test`` (Recall@20 / MRR@20, conservative
and standard ties): the RSC15 cross-entropy configuration for each seed, then the bpr-max configuration
against Popular and item-to-item co-occurrence baselines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_recs.evaluation.sessions import evaluate_sessions  # noqa: E402
from spark_recs.models.gru4rec import GRU4Rec  # noqa: E402
from spark_recs.models.gru4rec.iterator import Schedule, build_schedule, group_sessions  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sessions" / "rsc15_100k"
RSC15_XE = dict(
    loss="cross-entropy",
    constrained_embedding=True,
    embedding=0,
    elu_param=0.0,
    layers=[100],
    n_epochs=10,
    batch_size=32,
    dropout_p_embed=0.0,
    dropout_p_hidden=0.4,
    learning_rate=0.2,
    momentum=0.2,
    n_sample=2048,
    sample_alpha=0.5,
    bpreg=0.0,
    logq=1.0,
)
RSC15_BPRMAX = RSC15_XE | dict(
    loss="bpr-max",
    elu_param=1.0,
    bpreg=0.9,
    sample_alpha=0.3,
    dropout_p_embed=0.5,
    dropout_p_hidden=0.3,
    learning_rate=0.05,
    momentum=0.15,
    batch_size=128,
    logq=0.0,
)
LARGE = RSC15_XE | dict(layers=[512], batch_size=128)


def read_rsc15(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"yoochoose-clicks-100k_{name}.txt", sep="\t", dtype={"ItemId": str})


def synthetic_sessions(n_events=5_000_000, n_items=50_000, seed=0) -> pd.DataFrame:
    """Deterministic sessions: Zipf item popularity, each item with 8 likely successors (followed 70% of the time)."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(rng.permutation(1.0 / np.arange(1, n_items + 1) ** 1.05))
    cdf /= cdf[-1]
    successors = np.searchsorted(cdf, rng.random((n_items, 8)))
    lengths = np.minimum(2 + rng.geometric(0.3, size=n_events // 2), 40)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_events) + 1]
    # Generate position by position over sessions sorted longest first, so the sessions still going are a prefix.
    order = np.argsort(-lengths, kind="stable")
    columns = [np.searchsorted(cdf, rng.random(len(lengths)))]
    for t in range(1, int(lengths.max())):
        active = int((lengths > t).sum())
        prev = columns[-1][:active]
        follow = successors[prev, rng.integers(0, 8, active)]
        jump = np.searchsorted(cdf, rng.random(active))
        columns.append(np.where(rng.random(active) < 0.7, follow, jump))
    session = np.concatenate([order[: len(c)] for c in columns])
    position = np.concatenate([np.full(len(c), t) for t, c in enumerate(columns)])
    frame = pd.DataFrame(
        {"SessionId": session, "ItemId": np.concatenate(columns), "Time": session * 5.0 + position * 30.0}
    )
    return frame.sort_values(["SessionId", "Time"], kind="stable", ignore_index=True).iloc[:n_events]


def train_speed(gru: GRU4Rec, train: pd.DataFrame, steps: int, threads: int) -> float:
    """Training events/s over the first ``steps`` steps of an epoch (best of 3)."""
    torch.set_num_threads(threads)
    gru.set_params(n_epochs=0).fit(train, sample_cache_max_size=2_000_000)
    items = gru.item_indices(train["ItemId"].to_numpy())
    full = build_schedule(
        group_sessions(items, train["SessionId"].to_numpy(), train["Time"].to_numpy()),
        gru.batch_size,
        device=gru.device,
    )
    n = min(steps, full.n_steps)
    part = Schedule(full.inputs, full.targets, full.fresh, full.bounds[: n + 1], {})
    gru.net.train()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        gru._train_epoch(part)
        if gru.device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return part.n_events / best


def eval_speed(gru: GRU4Rec, test: pd.DataFrame, threads: int) -> float:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    result = evaluate_sessions(gru, test)
    return result.n_predictions / (time.perf_counter() - t0)


def speed(args) -> None:
    datasets = {} if args.only_synthetic else {"rsc15_100k": (read_rsc15("train_full"), read_rsc15("test"))}
    if not args.skip_synthetic:
        t0 = time.perf_counter()
        data = synthetic_sessions()
        cut = data["SessionId"].max() - 5_000  # the last sessions (~20k events) as the test set
        datasets["synthetic 5M/50k"] = (data[data["SessionId"] <= cut], data[data["SessionId"] > cut])
        print(f"synthetic data: {len(data):,} events in {time.perf_counter() - t0:.1f}s", flush=True)
    thread_counts = [1] if args.device != "cpu" else args.threads or sorted({1, os.cpu_count() or 1})
    rows = []
    for name, (train, test) in datasets.items():
        for config_name, config in (("RSC15 XE (100, bs32)", RSC15_XE), ("layers=[512], bs128", LARGE)):
            gru = GRU4Rec(**config, device=args.device)
            for threads in thread_counts:
                train_eps = train_speed(gru, train, args.steps, threads)
                eval_eps = eval_speed(gru, test, threads)
                rows.append((name, config_name, args.device, threads, train_eps, eval_eps))
                print(f"  {rows[-1]}", flush=True)
    print()
    print("| data | configuration | device | threads | train events/s | eval events/s |")
    print("|---|---|---|---:|---:|---:|")
    for name, config_name, device, threads, train_eps, eval_eps in rows:
        print(f"| {name} | {config_name} | {device} | {threads} | {train_eps:,.0f} | {eval_eps:,.0f} |")


class Popular:
    """Scores every item by its training count."""

    def __init__(self, train: pd.DataFrame):
        counts = train["ItemId"].value_counts()
        self.index = pd.Index(counts.index)
        self.scores = torch.tensor(counts.to_numpy(), dtype=torch.float64)

    def item_indices(self, raw):
        return self.index.get_indexer(raw)

    def scores_after(self, items):
        return self.scores.expand(len(items), -1)

    def next_item_scores(self, items, offsets, batch_size=512):
        inputs = np.concatenate([np.arange(a, b - 1) for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
        for chunk in range(0, len(inputs), batch_size):
            at = inputs[chunk : chunk + batch_size]
            yield self.scores_after(items[at]), torch.as_tensor(items[at + 1])


class CoOccurrence(Popular):
    """Scores items by how many training sessions contain both them and the current item (popularity breaks ties)."""

    def __init__(self, train: pd.DataFrame):
        super().__init__(train)
        pairs = train.assign(i=self.item_indices(train["ItemId"]))[["SessionId", "i"]].drop_duplicates()
        n = len(self.index)
        incidence = np.zeros((pairs["SessionId"].nunique(), n), dtype=np.float32)
        incidence[pd.factorize(pairs["SessionId"])[0], pairs["i"].to_numpy()] = 1.0
        cooc = torch.from_numpy(incidence.T @ incidence).double()
        cooc.fill_diagonal_(0.0)
        self.matrix = cooc + 1e-6 * self.scores / self.scores.max()

    def scores_after(self, items):
        return self.matrix[torch.as_tensor(items)]


def report(name: str, model, test: pd.DataFrame) -> tuple[float, float]:
    results = {
        mode: evaluate_sessions(model, test, cutoff=[20], mode=mode) for mode in ("conservative", "standard")
    }
    c, s = results["conservative"], results["standard"]
    print(
        f"| {name} | {c.recall[20]:.4f} | {c.mrr[20]:.4f} | {s.recall[20]:.4f} | {s.mrr[20]:.4f} |",
        flush=True,
    )
    return c.recall[20], c.mrr[20]


def accuracy(args) -> None:
    torch.set_num_threads(1)
    train, test = read_rsc15("train_full"), read_rsc15("test")
    header = (
        "| model | Recall@20 | MRR@20 | Recall@20 (standard) | MRR@20 (standard) |\n|---|---:|---:|---:|---:|"
    )
    print("RSC15 cross-entropy configuration, rsc15_100k train_full -> test")
    print(header)
    scores = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        gru = GRU4Rec(**RSC15_XE, seed=seed).fit(train)
        scores.append(report(f"GRU4Rec XE seed {seed} ({time.perf_counter() - t0:.0f}s)", gru, test))
    recall, mrr = np.mean(scores, axis=0)
    print(f"| mean of {len(scores)} seeds | {recall:.4f} | {mrr:.4f} | | |")
    print()
    print("bpr-max configuration vs baselines")
    print(header)
    for seed in args.seeds[:1]:
        report(f"GRU4Rec bpr-max seed {seed}", GRU4Rec(**RSC15_BPRMAX, seed=seed).fit(train), test)
    report("Popular", Popular(train), test)
    report("Item co-occurrence", CoOccurrence(train), test)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_speed = sub.add_parser("speed")
    p_speed.add_argument("--device", default="cpu")
    p_speed.add_argument("--steps", type=int, default=400)
    p_speed.add_argument("--skip-synthetic", action="store_true")
    p_speed.add_argument("--only-synthetic", action="store_true")
    p_speed.add_argument("--threads", type=int, nargs="+", help="thread counts (default: 1 and all cores)")
    p_acc = sub.add_parser("accuracy")
    p_acc.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    speed(args) if args.command == "speed" else accuracy(args)


if __name__ == "__main__":
    main()
