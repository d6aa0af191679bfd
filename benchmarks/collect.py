"""Benchmark: the driver's peak memory and time to collect GRU4Rec's training input, two ways side by side.

Synthetic session events (``prepare.make_data``, with no bad rows) are written to Parquet once (not timed). Then, each in a fresh Python process so the peaks are separable, one engine (classic local Spark or
an in-process pysail Spark Connect server) reads them and collects the columns the model reads
(``SessionId, ItemId, Time``):

* ``toPandas``: ``df.toPandas()``, what ``train`` did before;
* ``collect_columns``: :func:`spark_recs.data.io.collect_columns`, what ``train`` does now (the columns
  through Arrow, each buffer freed once converted).

Reported: seconds, the driver Python process's peak RSS (``ru_maxrss``; for pysail it includes the server)
and its growth over the process's RSS before the collect, in MB; the collected frame's own size for scale.

Run:  .venv/bin/python benchmarks/collect.py --events 10000000 --engines classic pysail
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import prepare  # this folder's data-preparation benchmark: its data, engines and subprocess runner

METHODS = ("toPandas", "collect_columns")
COLUMNS = ["SessionId", "ItemId", "Time"]


def rss_mb() -> float:
    """The current resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def worker(engine: str, method: str, src: str, work: str) -> dict:
    from spark_recs.data.io import collect_columns

    spark, stop = prepare.start_engine(engine, work)
    df = spark.read.parquet(src)
    df.limit(1).collect()  # the session and the reader warmed up, outside the measurement
    before = rss_mb()
    start = time.perf_counter()
    frame = df.select(*COLUMNS).toPandas() if method == "toPandas" else collect_columns(df, COLUMNS)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "seconds": seconds,
        "peak_mb": peak,
        "growth_mb": peak - before,
        "frame_mb": frame.memory_usage(index=False).sum() / 2**20,
        "rows": len(frame),
        "dtypes": ",".join(str(t) for t in frame.dtypes),
    }
    stop()
    return result


def subcommand(*args) -> str:
    return prepare.subcommand(*args, script=__file__)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(worker(*sys.argv[2:6])))
        return
    if sys.argv[1:2] == ["--generate"]:
        prepare.make_data(sys.argv[2], int(sys.argv[3]), 50_000, 0, 0.0)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--engines", nargs="+", choices=("classic", "pysail"), default=["classic", "pysail"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spark_recs_collect_") as tmp:
        src = Path(tmp) / "events.parquet"
        print(f"generating {args.events:,} events ...", file=sys.stderr, flush=True)
        subcommand("--generate", src, args.events)
        results = {}
        for engine in args.engines:
            for method in METHODS:
                print(f"  {engine} {method} ...", file=sys.stderr, flush=True)
                work = Path(tmp) / f"work-{engine}-{method}"
                results[engine, method] = json.loads(subcommand("--worker", engine, method, src, work))
    print(
        f"\n{'engine':<8} {'method':<16} {'rows':>11} {'seconds':>8} {'peak MB':>8} {'growth MB':>10} {'frame MB':>9}"
    )
    for (engine, method), r in results.items():
        print(
            f"{engine:<8} {method:<16} {r['rows']:>11,} {r['seconds']:>8.1f} {r['peak_mb']:>8.0f}"
            f" {r['growth_mb']:>10.0f} {r['frame_mb']:>9.0f}  ({r['dtypes']})"
        )
    for engine in args.engines:
        old, new = results[engine, "toPandas"], results[engine, "collect_columns"]
        print(
            f"{engine}: collect_columns / toPandas: growth {new['growth_mb'] / old['growth_mb']:.2f}x,"
            f" time {new['seconds'] / old['seconds']:.2f}x"
        )


if __name__ == "__main__":
    main()
