"""Benchmark: top-N evaluation of 1M recommendation rows (pandas vs Spark), and the baseline MultiEval.

Part 1 (``--rows``): synthetic lists of 100 items for ``rows / 100`` users over 20,000 items, and 5 test
items per user (about half drawn from the user's list, so there are hits at every rank), written to
Parquet first (not timed). Timed, side by side in one run: ``RecListAnalysis.compute`` with precision@10,
recall@10, hit@10, recip_rank, nDCG@10 and nDCG with the rating as gain

* ``pandas``: on the frames in memory;
* ``spark``: on embedded local Spark, reading the Parquet files, collecting the per-user table.

The two per-user tables must agree to 1e-9 (checked, not timed).

Part 2 (``--multieval``): ``spark-recs multieval --config conf/multieval-ml-latest-small.yaml`` (6
algorithms x ``--partitions`` user folds of ml-latest-small, recommend 100 + predict, MLflow tracking to a
temporary SQLite store) as a subprocess; wall time and the runs table's own fit/recommend times.

Run:  .venv/bin/python benchmarks/evaluate.py --rows 1000000 --multieval --partitions 5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS, LIST, TEST = 20_000, 100, 5


def make_lists(n_rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(recs, truth)``: ``user, rank, item`` lists of 100 distinct items and 5 rated test items per user."""
    rng = np.random.default_rng(seed)
    n_users = n_rows // LIST
    items = np.argsort(rng.random((n_users, N_ITEMS // 20)), axis=1)[:, :LIST] * 20  # distinct per user
    recs = pd.DataFrame(
        {
            "user": np.repeat(np.arange(n_users), LIST),
            "rank": np.tile(np.arange(1, LIST + 1), n_users),
            "item": items.ravel().astype(np.int64),
        }
    )
    from_list = np.take_along_axis(items, rng.integers(0, LIST, (n_users, 2)), axis=1)
    others = rng.integers(0, N_ITEMS // 20, (n_users, TEST - 2)) * 20 + 1  # odd ids: never recommended
    truth_items = np.concatenate([from_list, others], axis=1).ravel()
    truth = pd.DataFrame(
        {
            "user": np.repeat(np.arange(n_users), TEST),
            "item": truth_items.astype(np.int64),
            "rating": rng.integers(1, 6, n_users * TEST).astype(np.float64),
        }
    ).drop_duplicates(["user", "item"])
    return recs, truth


def analysis():
    from spark_recs.evaluation.accuracy import RecListAnalysis

    rla = RecListAnalysis()
    for kind in ("precision", "recall", "hit", "ndcg"):
        rla.add_metric(kind, k=10)
    rla.add_metric("recip_rank")
    rla.add_metric("ndcg", name="ndcg_rating", gain="rating")
    return rla


def bench_metrics(n_rows: int) -> None:
    from spark_recs.runtime import get_spark

    recs, truth = make_lists(n_rows)
    rla = analysis()
    spark = get_spark(conf={"spark.sql.shuffle.partitions": "8"})
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        spark.createDataFrame(recs).write.parquet(f"{tmp}/recs")
        spark.createDataFrame(truth).write.parquet(f"{tmp}/truth")
        rla.compute(spark.read.parquet(f"{tmp}/recs").limit(1000), spark.read.parquet(f"{tmp}/truth")).count()

        start = time.perf_counter()
        by_pandas = rla.compute(recs, truth)
        pandas_s = time.perf_counter() - start

        start = time.perf_counter()
        by_spark = rla.compute(
            spark.read.parquet(f"{tmp}/recs"), spark.read.parquet(f"{tmp}/truth")
        ).toPandas()
        spark_s = time.perf_counter() - start

    keys = ["user"]
    left = by_pandas.sort_values(keys).reset_index(drop=True)
    right = by_spark.sort_values(keys).reset_index(drop=True)[left.columns]
    diff = max(float(np.nanmax(np.abs(left[m] - right[m]))) for m in rla.metric_names)
    assert diff <= 1e-9, f"pandas and Spark differ by {diff}"
    summary = rla.summary(by_pandas)
    print(f"{len(recs):,} recommendation rows, {recs['user'].nunique():,} users, {len(truth):,} test rows")
    print(f"  pandas: {pandas_s:7.2f} s  ({len(recs) / pandas_s:,.0f} rows/s)")
    print(
        f"  spark : {spark_s:7.2f} s  ({len(recs) / spark_s:,.0f} rows/s; {spark_s / pandas_s:.2f}x pandas)"
    )
    print(f"  max |pandas - spark| over {len(rla.metric_names)} metrics: {diff:.1e}")
    print("  means: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items()))
    spark.stop()


def bench_multieval(partitions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_multieval_") as tmp:
        command = [
            str(Path(sys.executable).with_name("spark-recs")),
            "multieval",
            "--config",
            str(ROOT / "conf" / "multieval-ml-latest-small.yaml"),
            "--set",
            f"evaluation.path={tmp}/out",
            "--set",
            f"split.partitions={partitions}",
            "--tracking-uri",
            f"sqlite:///{tmp}/mlflow.db",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
        runs = pd.read_csv(f"{tmp}/out/runs.csv")
    times = runs.groupby("AlgoStr")[["TrainTime", "RecTime", "PredTime"]].sum().round(1)
    print(f"MultiEval: {len(runs)} runs ({runs['AlgoStr'].nunique()} algorithms x {partitions} partitions)")
    print(f"  wall time {wall:.1f} s; per algorithm, summed over partitions (s):")
    print(times.to_string())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="recommendation rows (0 to skip)")
    parser.add_argument("--multieval", action="store_true", help="also time the baseline MultiEval")
    parser.add_argument("--partitions", type=int, default=5)
    args = parser.parse_args()
    if args.rows:
        bench_metrics(args.rows)
    if args.multieval:
        bench_multieval(args.partitions)


if __name__ == "__main__":
    main()
