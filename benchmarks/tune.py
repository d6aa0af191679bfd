"""Benchmark: a GRU4Rec search on rsc15_100k, trials run as Spark tasks one and two at a time.

The official rsc15_100k split (``train_tr`` / ``train_valid`` / ``test``) is written as a prepared folder.
Each parallelism then runs in its own process (a fresh local Spark, ``local[2]``): ``spark-recs tune``
with the space of ``--space`` (default: ``conf/tune-gru4rec-rsc15.yaml``'s, the ranges of the official
``gru4rec_xe_standard_parspace.json``; pass that file to use it as it is), TPE seeded, ``--trials``
trials of ``--epochs`` epochs, scored on the valid sessions. Printed: wall time of the search (first trial's start to last trial's end), the sum
of the trials' own seconds (the work done), the speed-up of parallelism 2 over 1 and the best validation
Recall@20. The best configuration of the sequential search is then trained on train + valid and tested
once (``--train-best``), next to the official rsc15 paramfile's configuration (``conf/example.yaml``)
trained and tested the same way with the same epochs. Last, ItemKNN's search on ml-latest-small
(``conf/tune-itemknn-ml-latest-small.yaml``): the best validation and test nDCG@10 next to the defaults'.

Run:  .venv/bin/python benchmarks/tune.py [--space path/to/gru4rec_xe_standard_parspace.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sessions" / "rsc15_100k"
FILES = {"train": "train_tr", "valid": "train_valid", "test": "test"}


def write_prepared(folder: Path) -> None:
    for part, name in FILES.items():
        clicks = pd.read_csv(DATA / f"yoochoose-clicks-100k_{name}.txt", sep="\t")
        (folder / f"sessions_{part}").mkdir(parents=True)
        clicks.to_parquet(folder / f"sessions_{part}" / "part-0.parquet", index=False)


def worker(args: argparse.Namespace) -> None:
    """One search (and, with --train-best, the final fit and test) in this process; writes JSON."""
    from spark_recs.config import load_config
    from spark_recs.runtime import get_spark
    from spark_recs.tasks import run

    work = Path(args.work)
    overrides = [
        f"model.n_epochs={args.epochs}",
        f"tune.n_trials={args.trials}",
        f"tune.parallelism={args.parallelism}",
        f"tune.study=bench-p{args.parallelism}",
        f"tune.storage=sqlite:///{work / f'tuning-p{args.parallelism}.db'}",
        f"tune.best_config={work / f'best-p{args.parallelism}.yaml'}",
    ]
    config = load_config(args.config, overrides)
    if args.space:
        config["search_space"], config["tune"]["space"] = [], args.space
    spark = get_spark()
    tuned = run("tune", spark, config, args.prepared, train_best=args.train_best, register_as="")
    # The search alone: from the first trial's start to the last one's end (not the data copy, not
    # the --train-best fit).
    trials = tuned.trials
    seconds = (trials["datetime_complete"].max() - trials["datetime_start"].min()).total_seconds()
    trial_seconds = float(tuned.trials["user_attrs_seconds"].sum())
    result = {
        "parallelism": args.parallelism,
        "seconds": seconds,
        "trial_seconds": trial_seconds,
        "best_valid_recall": tuned.best_value,
        "best_params": tuned.best_params,
        "test": tuned.test_metrics,
    }
    Path(args.out).write_text(json.dumps(result))


def baseline(args: argparse.Namespace) -> None:
    """The paramfile's configuration trained on train + valid and tested once, as --train-best does."""
    from spark_recs.config import load_config
    from spark_recs.runtime import get_spark
    from spark_recs.tasks import run

    config = load_config(
        ROOT / "conf" / "example.yaml", [f"model.n_epochs={args.epochs}", "paths.model_save=null"]
    )
    spark = get_spark()
    trained = run("train", spark, config, args.prepared, register_as="", include_valid=True)
    tested = run("evaluate", spark, config, args.prepared, trained.model_uri)
    Path(args.out).write_text(json.dumps({"test": tested.metrics}))


def knn(args: argparse.Namespace) -> None:
    """The ItemKNN search of conf/tune-itemknn-ml-latest-small.yaml with --train-best, and the default
    parameters scored on the same valid and test splits."""
    from spark_recs.config import load_config
    from spark_recs.data.io import collect_columns
    from spark_recs.data.sources import read_ratings
    from spark_recs.models import ItemKNN
    from spark_recs.runtime import get_spark
    from spark_recs.tasks import run
    from spark_recs.tasks.multieval import search_splits
    from spark_recs.tuning.objectives import user_model_score

    work = Path(args.work)
    overrides = [
        f"tune.n_trials={args.knn_trials}",
        f"tune.storage=sqlite:///{work / 'tuning-knn.db'}",
        f"tune.best_config={work / 'best-knn.yaml'}",
    ]
    config = load_config(ROOT / "conf" / "tune-itemknn-ml-latest-small.yaml", overrides, schema=None)
    spark = get_spark()
    tuned = run("tune", spark, config, train_best=True, register_as="")
    ratings = read_ratings(spark, config["data"]["ratings"], "ratings").accepted
    train, test, inner, valid = (
        collect_columns(f, f.columns) for f in search_splits(ratings, config["split"])
    )
    fixed = config["algorithms"][0]["params"]
    metric, n = config["tune"]["metric"], config["evaluation"]["recommend"]
    default = {
        "valid": user_model_score(ItemKNN(**fixed).fit(inner), valid, metric, n),
        "test": user_model_score(ItemKNN(**fixed).fit(train), test, metric, n),
    }
    found = {"valid": tuned.best_value, "test": tuned.test_metrics[metric], "params": tuned.best_params}
    Path(args.out).write_text(json.dumps({"metric": metric, "default": default, "best": found}))


def child(mode: str, args: argparse.Namespace, out: Path, *extra: str) -> dict:
    command = [sys.executable, __file__, f"--{mode}", "--prepared", args.prepared, "--out", str(out)]
    command += ["--work", args.work, "--trials", str(args.trials), "--epochs", str(args.epochs), *extra]
    command += ["--knn-trials", str(args.knn_trials)]
    if args.space:
        command += ["--space", args.space]
    env = os.environ | {
        "SPARK_RECS_HOME": str(Path(args.work) / f"home-{out.stem}"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{Path(args.work) / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
        "SPARK_RECS_MASTER": "local[2]",
    }
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", help="a paramspaces file (default: the config's search_space)")
    parser.add_argument("--config", default=str(ROOT / "conf" / "tune-gru4rec-rsc15.yaml"))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--knn-trials", type=int, default=20, help="trials of the ItemKNN search")
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--knn", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parallelism", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--train-best", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.baseline:
        return baseline(args)
    if args.knn:
        return knn(args)
    if not DATA.exists():
        sys.exit(f"rsc15_100k not found at {DATA} (expected ../shared/data beside the project)")
    with tempfile.TemporaryDirectory(prefix="spark_recs_bench_tune_") as scratch:
        args.work, args.prepared = scratch, str(Path(scratch) / "prepared")
        write_prepared(Path(args.prepared))
        runs = [
            child("worker", args, Path(scratch) / "p1.json", "--parallelism", "1", "--train-best"),
            child("worker", args, Path(scratch) / "p2.json", "--parallelism", "2"),
        ]
        reference = child("baseline", args, Path(scratch) / "baseline.json")
        itemknn = child("knn", args, Path(scratch) / "knn.json")
    print(
        f"\nGRU4Rec search on rsc15_100k: {args.trials} trials x {args.epochs} epochs, TPE seed 42, 2 cores"
    )
    print(f"space: {args.space or args.config + ' search_space'}\n")
    table = pd.DataFrame(
        [
            {
                "parallelism": r["parallelism"],
                "wall s": round(r["seconds"], 1),
                "sum of trial s": round(r["trial_seconds"], 1),
                "best valid recall@20": round(r["best_valid_recall"], 4),
            }
            for r in runs
        ]
    )
    print(table.to_string(index=False))
    print(f"\nspeed-up of parallelism 2 over 1: {runs[0]['seconds'] / runs[1]['seconds']:.2f}x (wall)")
    best = runs[0]
    print(f"\nbest configuration (parallelism 1): {best['best_params']}")
    rows = [
        {"configuration": "best of the search, --train-best", **best["test"]},
        {"configuration": f"rsc15 paramfile (conf/example.yaml), {args.epochs} epochs", **reference["test"]},
    ]
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    metric = itemknn["metric"]
    print(f"\nItemKNN on ml-latest-small, {args.knn_trials} TPE trials, {metric} of 100-item lists:")
    rows = [
        {"parameters": "defaults (nnbrs 20, explicit)", **itemknn["default"]},
        {
            "parameters": f"best {itemknn['best']['params']}",
            "valid": itemknn["best"]["valid"],
            "test": itemknn["best"]["test"],
        },
    ]
    print(pd.DataFrame(rows).round(4).to_string(index=False))


if __name__ == "__main__":
    main()
