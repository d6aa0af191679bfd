"""The ``spark-recs`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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


def _multieval(args: argparse.Namespace) -> int:
    from spark_recs.config import build_algorithms, load_config
    from spark_recs.data.io import is_table_name, read_table
    from spark_recs.data.movielens import load_ratings
    from spark_recs.data.schema import validate
    from spark_recs.data.split import SampleFrac, SampleN, partition_users
    from spark_recs.evaluation import MultiEval

    config = load_config(args.config, args.set, schema="multieval")
    algorithms = build_algorithms(config["algorithms"])
    spark = get_spark(args.remote)
    source, split, evaluation = config["data"]["ratings"], config["split"], config["evaluation"]
    if not is_table_name(source) and Path(source).is_dir():
        checked = load_ratings(spark, source)
    else:
        checked = validate(read_table(spark, source), ["user", "item"], "timestamp", rating_column="rating")
    print(checked.summary())
    holdout = (
        SampleFrac(split["holdout_fraction"])
        if split["holdout_fraction"] is not None
        else SampleN(split["holdout"])
    )
    folds = list(partition_users(checked.accepted, split["partitions"], holdout, seed=split["seed"]))
    evaluator = MultiEval(
        evaluation["path"],
        predict=evaluation["predict"],
        recommend=evaluation["recommend"],
        experiment=evaluation["experiment"],
        tracking_uri=args.tracking_uri,
    )
    for name, model in algorithms:
        evaluator.add_algorithms(model, name=name)
    evaluator.add_datasets(folds, name=config["data"]["name"])
    if evaluation["persist_data"]:
        evaluator.persist_data()
    evaluator.run(args.runs or None)
    results = evaluator.collect_results()
    metrics = [c for c in results.columns if "@" in c or c in ("ndcg", "recip_rank", "rmse", "mae")]
    print(results.groupby("AlgoStr")[metrics + ["TrainTime", "RecTime"]].mean().round(4).to_string())
    print(f"runs table: {evaluation['path']}/runs.csv; MLflow experiment {evaluation['experiment']!r}")
    return 0 if (results["status"] == "ok").all() else 1


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

    multieval = sub.add_parser(
        "multieval",
        help="compare algorithms LensKit-style (datasets x partitions x algorithms), tracked in MLflow",
        description="Load and validate ratings, cut them into user crossfolds, fit every algorithm on every "
        "fold, recommend and predict over Spark, compute LensKit metrics, write runs.csv, the "
        "recommendations and predictions, and log a parent MLflow run with one nested run per RunId.",
        epilog="examples:\n  spark-recs multieval --config conf/multieval-ml-latest-small.yaml\n"
        "  spark-recs multieval --config conf/multieval-ml-latest-small.yaml --set split.partitions=2\n"
        "  spark-recs multieval --config conf/multieval-ml-latest-small.yaml --runs 3 4   # fan-out",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    multieval.add_argument(
        "--config", required=True, help="YAML config (see conf/multieval-ml-latest-small.yaml)"
    )
    multieval.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value"
    )
    multieval.add_argument("--runs", type=int, nargs="+", help="only these 1-based RunIds (default: all)")
    multieval.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite)"
    )
    multieval.set_defaults(run=_multieval)
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
