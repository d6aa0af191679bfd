"""Benchmark: validate + index + GRU4Rec time split on synthetic sessions, three engines side by side.

For each size, synthetic session events (``spark_recs.data.synthetic.synthetic_sessions``) are generated
once, salted with a few bad rows (null ids, null times, exact duplicates; ``--dirty``) and written to
Parquet (not timed). Each engine then runs, in its own subprocess so peak memories are separable:

* ``classic``: embedded local Spark (``spark_recs.runtime.get_spark``);
* ``pysail``: a pysail Spark Connect server started inside the driver process;
* ``pandas``: a plain pandas/NumPy implementation of the same steps (:func:`pandas_pipeline`).

Timed: read the Parquet -> ``validate`` -> ``IdIndex`` on ``ItemId`` -> ``gru4rec_time_split(days=1)`` ->
write the outputs (split rows partitioned by ``part``, rejected rows, item index) to Parquet. The row
counts are then read back from the output and must agree across engines. Peak memory is the driver
Python process's ``ru_maxrss`` (for pysail that includes the in-process server); for classic Spark the
JVM's peak RSS (``VmHWM``) is reported too. Item indices are dense ``0..n-1`` in every engine, but the
numbering differs (Spark hashes ids into buckets, pandas sorts them), so only counts are compared.

Run:  .venv/bin/python benchmarks/prepare.py --sizes 1000000 10000000 --engines classic pysail pandas
(``SPARK_RECS_DRIVER_MEMORY=8g`` gives the classic driver more heap.)
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
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ENGINES = ("classic", "pysail", "pandas")
KEYS = ["SessionId", "ItemId"]
DAY = 86400
PARTS = ("train_tr", "valid", "test", "rejected")
SPLIT_REASONS = (
    "short_session",
    "rare_item",
    "short_session_after_item_filter",
    "test_unseen_item",
    "test_short_session",
    "valid_unseen_item",
    "valid_short_session",
)


# --- data -----------------------------------------------------------------------------------------


def make_data(path: str, n_events: int, n_items: int, seed: int, dirty: float) -> None:
    """Write ``n_events`` synthetic events to Parquet (classic Spark), a ``dirty`` share of them made bad: a
    quarter each get a null SessionId, a null ItemId or a null Time, or are written twice."""
    from pyspark.sql import functions as F

    from spark_recs.data.synthetic import synthetic_sessions
    from spark_recs.runtime import get_spark

    spark = get_spark()
    df = synthetic_sessions(spark, n_events, n_items, seed=seed)
    u = F.pmod(F.xxhash64(F.lit(seed), *[F.col(c) for c in df.columns]), F.lit(1_000_000)) / 1e6
    band = F.floor(u / F.lit(dirty / 4)) if dirty > 0 else F.lit(99)
    df = df.withColumn("_band", band)
    dirtied = df.select(
        *[
            F.when(F.col("_band") == b, F.lit(None)).otherwise(F.col(c)).alias(c)
            for b, c in enumerate(KEYS + ["Time"])
        ]
    )
    copies = df.where(F.col("_band") == 3).drop("_band")
    dirtied.unionByName(copies).write.mode("overwrite").parquet(path)
    spark.stop()


# --- pandas implementation ------------------------------------------------------------------------


def pandas_validate(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted rows (ids as int64) and rejected rows with ``reason``; the first failing check wins, as in
    ``spark_recs.data.schema.validate``: null id, unparseable (null) time, exact duplicate of an earlier row."""
    failed = [df[c].isna().to_numpy() for c in KEYS] + [
        pd.to_numeric(df["Time"], errors="coerce").isna().to_numpy()
    ]
    failed.append(~np.logical_or.reduce(failed) & df.duplicated(keep="first").to_numpy())
    reasons = [f"null {c}" for c in KEYS] + ["unparseable Time", "duplicate event"]
    code = np.select(failed, np.arange(1, len(failed) + 1, dtype=np.int8), default=0)
    bad = code > 0
    rejected = df[bad].assign(reason=pd.Categorical.from_codes(code[bad] - 1, reasons))
    accepted = df[~bad].astype({"SessionId": "int64", "ItemId": "int64", "Time": "float64"})
    return accepted.reset_index(drop=True), rejected


def pandas_index(ids: pd.Series) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense ``0..n-1`` item indices (in sorted id order) and the ``id, index`` mapping."""
    codes, uniques = pd.factorize(ids, sort=True)
    return codes, pd.DataFrame({"id": uniques, "index": np.arange(len(uniques))})


def pandas_gru4rec_split(
    df: pd.DataFrame, days: float = 1, min_len: int = 2, min_support: int = 5
) -> pd.DataFrame:
    """``df`` plus ``part`` and ``reason``, with the semantics of ``spark_recs.data.split.gru4rec_time_split``:
    rows are decided in order (short sessions, rare items, short sessions again, then the test and the
    validation time split), each step looking only at the rows still undecided."""
    session = pd.factorize(df["SessionId"])[0]
    item = pd.factorize(df["ItemId"])[0]
    t = df["Time"].to_numpy(dtype=np.float64)
    part = np.full(len(df), -1, dtype=np.int8)  # -1 = undecided, else an index into PARTS
    reason = np.full(len(df), -1, dtype=np.int8)  # an index into SPLIT_REASONS

    def live() -> np.ndarray:
        return part < 0

    def count(key: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(key, weights=mask, minlength=key.max(initial=-1) + 1)[key]

    def assign(cond: np.ndarray, to: str, why: str | None = None) -> None:
        chosen = live() & cond
        part[chosen] = PARTS.index(to)
        if why:
            reason[chosen] = SPLIT_REASONS.index(why)

    assign(count(session, live()) < min_len, "rejected", "short_session")
    assign(count(item, live()) < min_support, "rejected", "rare_item")
    assign(count(session, live()) < min_len, "rejected", "short_session_after_item_filter")
    for name in ("test", "valid"):
        alive = live()
        if not alive.any():
            break
        cutoff = t[alive].max() - days * DAY
        end = np.full(session.max() + 1, -np.inf)
        np.maximum.at(end, session[alive], t[alive])
        holdout = alive & (end[session] >= cutoff)
        seen = count(item, alive & ~holdout) > 0
        assign(holdout & ~seen, "rejected", f"{name}_unseen_item")
        assign(holdout & (count(session, live() & holdout) < 2), "rejected", f"{name}_short_session")
        assign(holdout, name)
    assign(live(), "train_tr")
    return df.assign(
        part=pd.Categorical.from_codes(part, PARTS), reason=pd.Categorical.from_codes(reason, SPLIT_REASONS)
    )


def pandas_pipeline(src: str, out: str, meter: StepMeter) -> None:
    with meter.step("validate"):
        accepted, rejected = pandas_validate(pd.read_parquet(src))
    with meter.step("index"):
        accepted["ItemId"], mapping = pandas_index(accepted["ItemId"])
    with meter.step("split"):
        rows = pandas_gru4rec_split(accepted)
    with meter.step("write"):
        rows.to_parquet(f"{out}/split", partition_cols=["part"], index=False)
        rejected.to_parquet(f"{out}/rejected", index=False)
        mapping.to_parquet(f"{out}/items", index=False)


# --- Spark implementation (the library) -----------------------------------------------------------


STEPS = ("validate", "index", "split", "write")


class StepMeter:
    """Seconds per step, and on classic Spark the Spark jobs and stages each step ran (its job group)."""

    def __init__(self, spark) -> None:
        self.spark, self.steps = spark, {}
        from spark_recs.runtime import is_connect

        self.tracker = None if spark is None or is_connect(spark) else spark.sparkContext.statusTracker()

    @contextmanager
    def step(self, name: str):
        if self.tracker:
            self.spark.sparkContext.setJobGroup(name, name)
        start = time.perf_counter()
        yield
        record = {"seconds": time.perf_counter() - start}
        if self.tracker:
            jobs = self.tracker.getJobIdsForGroup(name)
            stages = [s for j in jobs for s in self.tracker.getJobInfo(j).stageIds]
            record |= {"jobs": len(jobs), "stages": len(set(stages))}
        self.steps[name] = record


def spark_pipeline(spark, src: str, out: str, meter: StepMeter) -> None:
    from spark_recs.data.index import IdIndex
    from spark_recs.data.schema import validate
    from spark_recs.data.split import gru4rec_time_split

    with meter.step("validate"):
        checked = validate(spark.read.parquet(src), KEYS, "Time")
    with meter.step("index"):
        items, indexed = IdIndex.fit_transform(checked.accepted, "ItemId")
    with meter.step("split"):
        split = gru4rec_time_split(indexed, days=1)
    with meter.step("write"):
        split.rows.write.mode("overwrite").partitionBy("part").parquet(f"{out}/split")
        checked.rejected.write.mode("overwrite").parquet(f"{out}/rejected")
        items.mapping.write.mode("overwrite").parquet(f"{out}/items")


# --- one engine, one size (a subprocess) ----------------------------------------------------------


def output_counts(out: str, rows_in: int) -> dict[str, int]:
    """Row counts read back from an engine's output (with pandas, the same for every engine)."""
    split = pd.read_parquet(f"{out}/split", columns=["part", "reason"])
    by = split.astype(object).fillna("").value_counts(["part", "reason"]).to_dict()
    n = {p: sum(v for (q, _), v in by.items() if q == p) for p in PARTS}
    valid_rejected = sum(v for (q, r), v in by.items() if q == "rejected" and r.startswith("valid_"))
    counts = {
        "rows_in": rows_in,
        "invalid": len(pd.read_parquet(f"{out}/rejected", columns=["reason"])),
        "items": len(pd.read_parquet(f"{out}/items")),
        "train_full": n["train_tr"] + n["valid"] + valid_rejected,
        "test": n["test"],
        "train_tr": n["train_tr"],
        "valid": n["valid"],
        "rejected": n["rejected"],
    }
    return counts | {f"rejected:{r}": by.get(("rejected", r), 0) for r in SPLIT_REASONS}


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size of a live process, from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_engine(engine: str, work: str):
    """``(spark, stop)`` for ``engine`` with its work dir ``work``: classic local Spark, or a pysail Spark
    Connect server in this process and a session on it; ``(None, stop)`` for pandas."""
    os.environ["SPARK_RECS_HOME"] = work
    if engine == "classic":
        from spark_recs.runtime import get_spark

        spark = get_spark()
        return spark, spark.stop
    if engine == "pysail":
        from pysail.spark import SparkConnectServer
        from pyspark.sql import SparkSession

        os.environ.setdefault("RUST_LOG", "error")  # pysail warns on every no-op hint/persist
        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        host, port = server.listening_address
        spark = SparkSession.builder.remote(f"sc://{host}:{port}").create()
        return spark, lambda: (spark.stop(), server.stop())
    return None, lambda: None


def worker(engine: str, src: str, out: str, work: str) -> dict:
    import pyarrow.dataset

    rows_in = pyarrow.dataset.dataset(src).count_rows()  # from the Parquet footers
    spark, stop = start_engine(engine, work)
    jvm_pid = spark.sparkContext._gateway.proc.pid if engine == "classic" else None

    meter = StepMeter(spark)
    start = time.perf_counter()
    if spark is None:
        pandas_pipeline(src, out, meter)
    else:
        spark_pipeline(spark, src, out, meter)
    seconds = time.perf_counter() - start

    driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    jvm_mb = vm_hwm_mb(jvm_pid) if jvm_pid else None
    stop()
    return {
        "seconds": seconds,
        "driver_mb": driver_mb,
        "jvm_mb": jvm_mb,
        "steps": meter.steps,
        "counts": output_counts(out, rows_in),
    }


def subcommand(*args, script: str = __file__) -> str:
    """Run ``script``'s (default: this one's) internal ``args`` in a fresh Python process; return its last line
    of output."""
    proc = subprocess.run([sys.executable, script, *map(str, args)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed (exit {proc.returncode})")
    return (proc.stdout.strip().splitlines() or [""])[-1]


def run_engine(engine: str, src: Path, tmp: Path) -> dict:
    return json.loads(subcommand("--worker", engine, src, tmp / f"out-{engine}", tmp / f"work-{engine}"))


# --- report ---------------------------------------------------------------------------------------


def report(results: dict[tuple[int, str], dict]) -> bool:
    """Print the timing table and the counts table; return True when counts agree for every size."""
    print(
        f"\n{'engine':<8} {'events':>11} {'seconds':>8} {'events/s':>10} {'driver MB':>10} {'JVM MB':>8} {'x pandas':>9}"
    )
    for (size, engine), r in results.items():
        events = r["counts"]["rows_in"]
        base = results.get((size, "pandas"))
        ratio = f"{r['seconds'] / base['seconds']:.1f}" if base else "-"
        jvm = f"{r['jvm_mb']:.0f}" if r["jvm_mb"] else "-"
        print(
            f"{engine:<8} {events:>11,} {r['seconds']:>8.1f} {events / r['seconds']:>10,.0f}"
            f" {r['driver_mb']:>10.0f} {jvm:>8} {ratio:>9}"
        )
    print("(x pandas = engine seconds / pandas seconds; driver MB = peak RSS of the driver Python process)")

    print(f"\n{'engine':<8} {'events':>11} " + " ".join(f"{s:>22}" for s in STEPS))
    for (size, engine), r in results.items():
        cells = []
        for name in STEPS:
            step = r["steps"][name]
            plan = f" {step['jobs']}j/{step['stages']}s" if "jobs" in step else ""
            cells.append(f"{step['seconds']:.1f}s{plan}".rjust(22))
        print(f"{engine:<8} {size:>11,} " + " ".join(cells))
    print("(per step: seconds, and on classic Spark the jobs/stages it ran; with AQE each shuffle is a job)")

    agree = True
    keys = list(next(iter(results.values()))["counts"])
    main = keys[: keys.index("rejected") + 1]
    print(f"\n{'engine':<8} " + " ".join(f"{k:>11}" for k in main))
    for size in sorted({s for s, _ in results}):
        rows = {e: r["counts"] for (s, e), r in results.items() if s == size}
        for engine, counts in rows.items():
            print(f"{engine:<8} " + " ".join(f"{counts[k]:>11,}" for k in main))
        differing = [k for k in keys if len({c[k] for c in rows.values()}) > 1]
        if differing:
            agree = False
            for k in differing:
                print(f"  DISAGREE on {k}: " + ", ".join(f"{e}={c[k]:,}" for e, c in rows.items()))
        else:
            print(f"  all {len(rows)} engines agree (incl. rejected by reason)")
    return agree


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(worker(*sys.argv[2:6])))
        return
    if sys.argv[1:2] == ["--generate"]:
        path, *numbers = sys.argv[2:]
        make_data(path, *map(int, numbers[:3]), float(numbers[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--n-items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dirty",
        type=float,
        default=0.001,
        help="share of rows made bad, a quarter each: null SessionId, null ItemId, null Time, duplicated",
    )
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory(prefix="spark_recs_bench_") as tmp:
        tmp = Path(tmp)
        os.environ["SPARK_RECS_HOME"] = str(tmp / "work-data")
        for size in args.sizes:
            src = tmp / f"events-{size}.parquet"
            print(f"generating {size:,} events ...", file=sys.stderr, flush=True)
            subcommand("--generate", src, size, args.n_items, args.seed, args.dirty)
            for engine in args.engines:
                print(f"  {engine} ...", file=sys.stderr, flush=True)
                results[size, engine] = run_engine(engine, src, tmp / str(size))
                print(f"  {engine}: {results[size, engine]['seconds']:.1f} s", file=sys.stderr, flush=True)
    ok = report(results)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
