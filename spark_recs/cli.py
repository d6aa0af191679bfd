"""The ``spark-recs`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from spark_recs.runtime import get_spark


def _demo(args: argparse.Namespace) -> int:
    from spark_recs.demo import DemoConfig, run_demo, summary

    config = DemoConfig(
        sessions=args.sessions,
        ratings=args.ratings,
        test_days=args.test_days,
        n_events=args.events,
        n_items=args.items,
        seed=args.seed,
        tracking_uri=args.tracking_uri,
        output=args.output,
    )
    spark = get_spark(args.remote)
    print(summary(run_demo(spark, config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-recs", description="Recommender pipelines on Spark and Databricks."
    )
    parser.add_argument(
        "--remote", help="Spark Connect URL (sc://host:port); default $SPARK_REMOTE or local Spark"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the main job end to end (synthetic sessions by default)",
        description="Load, validate, index and split a session log, train Popular, recommend the top 20 after "
        "every test event with a pandas UDF, compute Recall@20/MRR@20 and log the run to MLflow.",
        epilog="examples:\n  spark-recs demo\n  spark-recs demo --ratings ../shared/data/ml-100k --test-days 30\n  spark-recs demo --sessions clicks.tsv --tracking-uri sqlite:///mlflow.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--sessions", help="session log (SessionId, ItemId, Time; file, path or table); default synthetic"
    )
    demo.add_argument(
        "--ratings",
        help="ratings instead (MovieLens folder, or user,item,rating,timestamp file/table); users act as sessions",
    )
    demo.add_argument(
        "--test-days", type=float, default=1.0, help="test = sessions ending in the last N days (default 1)"
    )
    demo.add_argument("--events", type=int, default=200_000, help="synthetic events (default 200000)")
    demo.add_argument("--items", type=int, default=2_000, help="synthetic items (default 2000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite in .spark_recs)"
    )
    demo.add_argument(
        "--output", help="folder for the recommendations and rejected rows (default .spark_recs/demo)"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"spark-recs {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
