"""Benchmark: batch top-100 recommendation for 10k / 100k / 1M users over 20,000 items (64-d factors).

Legs, each in its own Python process so peak memories are separable:

* ``inproc`` (a): the same model scored in one process, all cores, by ``spark_recs.models.topn.
  recommend_frame`` (one matrix product and one exact top-k per 512 users): the limit on this machine;
* ``classic`` (b): ``spark_recs.batch.recommend`` on embedded local Spark;
* ``pysail`` (c): the same on a pysail Spark Connect server started in the driver process;
* ``als`` (d): Spark MLlib ``ALSModel.recommendForUserSubset`` on an ALS model (rank 64, one iteration)
  fitted to synthetic ratings of every user, and (b) again with that ALS model's factors (``als-ours``).

Spark legs count the result rows (``count()``: every recommendation is computed and handed back to the
JVM; nothing is collected). Times are wall-clock for the whole call, including the user shuffle, the
unknown-user report and shipping the model. Peak memory is the driver Python process's ``ru_maxrss``
(for pysail that includes the server); for classic Spark the JVM's peak RSS too.

Run:  .venv/bin/python benchmarks/batch.py --users 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from prepare import vm_hwm_mb  # noqa: E402 (benchmarks/ is on sys.path when run as a script)

N_ITEMS, DIM, TOP = 20_000, 64, 100
LEGS = ("inproc", "classic", "pysail", "als")


def factor_model(n_users: int, seed: int = 0):
    """A MatrixFactorization over ``n_users`` x 20,000 items with Gaussian 64-d factors (seeded)."""
    from spark_recs.models.mf import MatrixFactorization

    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, DIM), dtype=np.float32)
    items = rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    return MatrixFactorization.from_factors(np.arange(n_users), np.arange(N_ITEMS), users, items)


def driver_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_pysail():
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    os.environ.setdefault("RUST_LOG", "error")
    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    return server, SparkSession.builder.remote(f"sc://{host}:{port}").create()


def spark_recommend(spark, model, n_users: int) -> float:
    from spark_recs import batch

    users = spark.range(n_users).withColumnRenamed("id", "user")
    start = time.perf_counter()
    rows = batch.recommend(model, users, TOP).count()
    seconds = time.perf_counter() - start
    assert rows == n_users * TOP, rows
    return seconds


def leg_inproc(n_users: int) -> dict:
    import torch

    from spark_recs.models.topn import recommend_frame

    model = factor_model(n_users)
    start = time.perf_counter()
    rows = 0
    with torch.no_grad():
        for first in range(0, n_users, 100_000):
            ids = np.arange(first, min(first + 100_000, n_users))
            rows += len(recommend_frame(model, ids, TOP, batch_size=512))
    seconds = time.perf_counter() - start
    assert rows == n_users * TOP
    return {"seconds": seconds, "threads": torch.get_num_threads()}


def leg_classic(n_users: int) -> dict:
    from spark_recs.runtime import get_spark

    spark = get_spark()
    jvm = spark.sparkContext._gateway.proc.pid
    seconds = spark_recommend(spark, factor_model(n_users), n_users)
    result = {"seconds": seconds, "jvm_mb": vm_hwm_mb(jvm)}
    spark.stop()
    return result


def leg_pysail(n_users: int) -> dict:
    server, spark = start_pysail()
    seconds = spark_recommend(spark, factor_model(n_users), n_users)
    spark.stop()
    server.stop()
    return {"seconds": seconds}


def fit_als(path: str, n_users: int) -> None:
    """Fit ALS (rank 64, one iteration) on 3 synthetic ratings per user and save it to ``path``."""
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from spark_recs.runtime import get_spark

    spark = get_spark()
    ratings = (
        spark.range(n_users * 3)
        .select(
            (F.col("id") % n_users).cast("int").alias("user"),
            F.pmod(F.xxhash64("id", F.lit(1)), F.lit(N_ITEMS)).cast("int").alias("item"),
            (F.pmod(F.xxhash64("id", F.lit(2)), F.lit(5)) + 1).cast("float").alias("rating"),
        )
        .unionByName(  # every item rated at least once, so the catalogue has all 20,000
            spark.range(N_ITEMS).select(
                F.lit(0).alias("user"),
                F.col("id").cast("int").alias("item"),
                F.lit(3.0).cast("float").alias("rating"),
            )
        )
    )
    als = ALS(rank=DIM, maxIter=1, regParam=0.1, seed=1, userCol="user", itemCol="item", ratingCol="rating")
    als.fit(ratings).write().overwrite().save(path)
    spark.stop()


def leg_als(n_users: int, path: str) -> dict:
    from pyspark.ml.recommendation import ALSModel

    from spark_recs import batch
    from spark_recs.models.mf import MatrixFactorization
    from spark_recs.runtime import get_spark

    spark = get_spark()
    als = ALSModel.load(path)
    users = spark.range(n_users).selectExpr("cast(id as int) as user")
    start = time.perf_counter()
    rows = als.recommendForUserSubset(users, TOP).selectExpr("explode(recommendations)").count()
    als_seconds = time.perf_counter() - start
    assert rows == n_users * TOP, rows

    user_factors = als.userFactors.toPandas()
    item_factors = als.itemFactors.toPandas()
    ours = MatrixFactorization.from_factors(
        user_factors["id"].to_numpy(),
        item_factors["id"].to_numpy(),
        np.stack(user_factors["features"].to_numpy()).astype(np.float32),
        np.stack(item_factors["features"].to_numpy()).astype(np.float32),
    )
    ours_seconds = spark_recommend(spark, ours, n_users)

    # Same lists? Compare the top 10 of 50 users (float sums in another order may swap near-ties).
    sample = spark.range(50).selectExpr("cast(id as int) as user")
    theirs = {
        r["user"]: [x["item"] for x in r["recommendations"]]
        for r in als.recommendForUserSubset(sample, 10).collect()
    }
    mine = batch.recommend(ours, sample, 10).toPandas().sort_values(["user", "rank"])
    agree = np.mean([mine[mine["user"] == u]["item"].tolist() == theirs[u] for u in theirs])
    spark.stop()
    return {"seconds": als_seconds, "ours_seconds": ours_seconds, "same_top10": float(agree)}


def subcommand(*args) -> dict:
    proc = subprocess.run([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--legs", nargs="+", default=list(LEGS), choices=LEGS)
    parser.add_argument("--leg", help=argparse.SUPPRESS)
    parser.add_argument("--als-path", help=argparse.SUPPRESS)
    parser.add_argument("--fit-als", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.fit_als:
        fit_als(args.als_path, args.fit_als)
        print(json.dumps({}))
        return
    if args.leg:
        n = args.users[0]
        result = leg_als(n, args.als_path) if args.leg == "als" else globals()[f"leg_{args.leg}"](n)
        print(json.dumps(result | {"driver_mb": driver_mb()}))
        return

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        os.environ.setdefault("SPARK_RECS_HOME", str(Path(tmp) / "home"))
        als_path = str(Path(tmp) / "als")
        if "als" in args.legs:
            start = time.perf_counter()
            subcommand("--fit-als", max(args.users), "--als-path", als_path)
            print(
                f"ALS fitted on {max(args.users) * 3:,} synthetic ratings in {time.perf_counter() - start:.0f} s"
            )
        for n in args.users:
            for leg in args.legs:
                results[(n, leg)] = subcommand("--leg", leg, "--users", n, "--als-path", als_path)
                print(f"{leg:<8} {n:>9,} users: {json.dumps(results[(n, leg)])}", flush=True)
    report(results, args.users, args.legs)


def report(results: dict, sizes: list[int], legs: list[str]) -> None:
    print(
        f"\n{'leg':<22} {'users':>9} {'seconds':>8} {'users/s':>9} {'x (a)':>6} {'driver MB':>10} {'JVM MB':>7}"
    )
    for n in sizes:
        base = results.get((n, "inproc"), {}).get("seconds")
        rows = []
        for leg in legs:
            r = results[(n, leg)]
            name = {"inproc": "(a) in-process", "classic": "(b) classic Spark", "pysail": "(c) pysail"}.get(
                leg
            )
            if leg == "als":
                rows.append(("(d) MLlib ALS", r["seconds"], r))
                rows.append(("(b) on ALS factors", r["ours_seconds"], r))
            else:
                rows.append((name, r["seconds"], r))
        for name, seconds, r in rows:
            ratio = f"{base / seconds:.2f}" if base else "-"
            jvm = f"{r['jvm_mb']:.0f}" if r.get("jvm_mb") else "-"
            print(
                f"{name:<22} {n:>9,} {seconds:>8.1f} {n / seconds:>9,.0f} {ratio:>6} {r['driver_mb']:>10.0f} {jvm:>7}"
            )
        if (n, "als") in results:
            r = results[(n, "als")]
            print(
                f"{'':<22} {n:>9,}  (b) / (d) = {r['seconds'] / r['ours_seconds']:.1f}x; "
                f"same top-10 for {r['same_top10']:.0%} of 50 users"
            )


if __name__ == "__main__":
    main()
