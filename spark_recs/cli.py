"""The ``spark-recs`` command: one subcommand per step of the tasks in :mod:`spark_recs.tasks`.

The same parser serves the console scripts (``spark-recs train ...`` or ``spark-recs-train ...``, the
entry points of the Databricks bundle's wheel tasks) and the spark-submit jobs in ``jobs/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from pyspark.errors import AnalysisException

from spark_recs.data.schema import SchemaError
from spark_recs.runtime import default_tracking_uri, get_spark

CONFIG_HELP = "YAML config (see conf/; defaults and rules: the schema() of spark_recs/tasks/<kind>.py)"
SET_HELP = "override a config value, e.g. --set model.n_epochs=2 (repeatable; the value is YAML)"
SEP_HELP = "separator of a CSV/TSV --input (default: from the suffix or the header line), e.g. ';'"
TRACKING_HELP = "MLflow tracking URI (default $MLFLOW_TRACKING_URI, Databricks, or sqlite in .spark_recs)"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _config(args: argparse.Namespace, schema: str | None, extra: list[str] = ()) -> dict:
    from spark_recs.config import load_config

    return load_config(args.config, [*extra, *args.set], schema=schema)


def _print_store(tracking_uri: str | None, run_id: str | None = None) -> None:
    """Where the command's MLflow runs are, and a command that opens them (runnable as printed)."""
    uri = tracking_uri or default_tracking_uri()
    print(f"MLflow run {run_id} in {uri}" if run_id else f"MLflow tracking store: {uri}")
    if uri.startswith("sqlite:"):
        print(f"  see it with: {_mlflow_command()} ui --backend-store-uri {uri}")


def _mlflow_command() -> str:
    """The ``mlflow`` beside this Python (the venv's), relative to the current folder when inside it."""
    beside = Path(sys.executable).with_name("mlflow")
    if not beside.exists():
        return "mlflow"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def _demo_help(field: str) -> str:
    """The help of a demo flag: the doc and default :class:`~spark_recs.tasks.demo.DemoConfig` declares."""
    from spark_recs.core.params import declarations
    from spark_recs.tasks.demo import DemoConfig

    declared = declarations(DemoConfig)[field]
    if declared.default is None:
        return declared.doc
    shown = f"{declared.default:g}" if isinstance(declared.default, float) else declared.default
    return f"{declared.doc} (default {shown})"


def _demo(args: argparse.Namespace) -> int:
    from spark_recs.config import override
    from spark_recs.data.sources import check_source
    from spark_recs.tasks import run

    flags = {
        "data.sessions": args.sessions,
        "data.ratings": args.ratings,
        "data.sep": args.sep,
        "data.test_days": args.test_days,
        "data.n_events": args.events,
        "data.n_items": args.items,
        "data.seed": args.seed,
        "mlflow.tracking_uri": args.tracking_uri,
        "paths.output": args.output,
    }
    config = _config(args, "demo", [override(k, v) for k, v in flags.items() if v is not None])
    for key in ("sessions", "ratings"):
        if config["data"][key]:
            check_source(config["data"][key], f"data.{key}")
    result = run("demo", get_spark(args.remote), config)
    metrics = ", ".join(f"{k} = {v:.4f}" for k, v in result.metrics.items() if k != "n_targets")
    print(f"Popular on {result.metrics['n_targets']:,.0f} next-item targets: {metrics}")
    print(f"Recommendations and rejected rows ({result.format}): {result.output}")
    _print_store(result.tracking_uri, result.run_id)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from spark_recs.data.sources import check_source
    from spark_recs.tasks import run

    config = _config(args, "gru4rec")
    check_source(args.input, "--input")
    result = run("prepare", get_spark(args.remote), config, args.input, args.output, sep=args.sep)
    print(result.summary())
    for part, table in result.tables.items():
        print(f"  {part}: {table}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from spark_recs.tasks import run, task
    from spark_recs.tasks.base import no_prepared_input
    from spark_recs.tasks.gru4rec import check_prepared

    config = _config(args, None)
    task(config["kind"]).step("train")  # a kind without a train step fails before Spark starts
    if config["kind"] == "gru4rec":
        check_prepared(args.input, "train")
    else:
        no_prepared_input(config["kind"], args.input)
    result = run(
        "train",
        get_spark(args.remote),
        config,
        args.input,
        experiment=args.experiment,
        register_as=args.register_as,
        alias=args.alias,
        tracking_uri=args.tracking_uri,
    )
    if result.evaluation is not None:
        print(result.evaluation.round(4).to_string(index=False))
    print(f"model: {result.model_uri}")
    if result.model_path:
        print(f"model file: {result.model_path}")
    _print_store(args.tracking_uri, result.run_id)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from spark_recs.serving.references import check_model
    from spark_recs.tasks import run
    from spark_recs.tasks.gru4rec import check_prepared, evaluated_model

    config = _config(args, "gru4rec")
    check_prepared(args.input, "test")
    check_model(evaluated_model(config, args.model))
    result = run(
        "evaluate",
        get_spark(args.remote),
        config,
        args.input,
        args.model,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        model_dir=args.model_dir,
    )
    metrics = ", ".join(f"{k} = {v:.4f}" for k, v in result.metrics.items())
    print(f"{metrics} on {result.counts['n_predictions']:,} next-item predictions")
    print(f"experiment {args.experiment!r}")
    _print_store(args.tracking_uri, result.run_id)
    return 0


def _tune(args: argparse.Namespace) -> int:
    from spark_recs.tasks import gru4rec, multieval, rl, run, task
    from spark_recs.tasks.base import no_prepared_input

    config = _config(args, None)
    task(config["kind"]).step("tune")  # a kind without a search fails before Spark starts
    if config["kind"] == "gru4rec":
        gru4rec.check_tune(config)
        for part in ("train", "valid", "test") if args.train_best else ("train", "valid"):
            gru4rec.check_prepared(args.input, part)
        inputs = (args.input,)
    else:
        no_prepared_input(config["kind"], args.input)
        {"multieval": multieval, "rl": rl}[config["kind"]].check_tune(config)
        inputs = ()
    result = run(
        "tune",
        get_spark(args.remote),
        config,
        *inputs,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        train_best=args.train_best,
        register_as=args.register_as,
        alias=args.alias,
    )
    columns = [
        c for c in result.trials.columns if c in ("number", "state", "value") or c.startswith("params_")
    ]
    print(result.trials[columns].round(4).to_string(index=False))
    metric = config["tune"]["metric"]
    print(f"best valid {metric} = {result.best_value:.4f} with {result.best_params}")
    print(f"best config: {result.best_config}")
    if result.trained is not None:
        print(", ".join(f"test {k} = {v:.4f}" for k, v in result.test_metrics.items()))
        print(f"model: {result.trained.model_uri}")
    _print_store(args.tracking_uri, result.run_id)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from spark_recs.tasks import gru4rec, rl, run, task
    from spark_recs.tasks.base import no_prepared_input

    config = _config(args, None)
    task(config["kind"]).step("promote")  # a kind without a gate fails before Spark starts
    options = {"experiment": args.experiment, "tracking_uri": args.tracking_uri}
    if config["kind"] == "gru4rec":
        gru4rec.check_promotion(config)
        gru4rec.check_prepared(args.input, "test")
        inputs, name = (args.input,), args.registered_model or gru4rec.DEFAULT_MODEL_NAME
        options["model_dir"] = args.model_dir
    else:
        no_prepared_input(config["kind"], args.input)
        rl.check_promotion(config)
        inputs, name = (), args.registered_model or config["mlflow"]["registered_model"]
    decision = run("promote", get_spark(args.remote), config, *inputs, registered_model=name, **options)
    settings = config["promotion"]
    champion = decision.challenger_version if decision.promoted else decision.champion_version
    print(decision.line)
    print(
        f"{name}: @{settings['challenger']} version {decision.challenger_version}, "
        f"@{settings['champion']} version {decision.champion_version or 'none'} -> {champion or 'none'}"
    )
    _print_store(args.tracking_uri, decision.run_id)
    return 0


def _show(frame, args: argparse.Namespace, what: str) -> None:
    """The count written to ``--output``, else the first rows (none at all is an error)."""
    from spark_recs.serving.references import URI
    from spark_recs.tasks.scoring import no_rows

    if args.output:
        print(f"{frame.count():,} {what} written to {args.output}")
    else:
        first = frame.limit(20).toPandas()
        if first.empty:
            raise no_rows(what, args.input)
        print(first.to_string(index=False))
    if URI.match(args.model):
        _print_store(args.tracking_uri)


def _recommend(args: argparse.Namespace) -> int:
    from spark_recs.data.sources import check_source
    from spark_recs.serving.references import check_model
    from spark_recs.tasks.scoring import recommend

    config = _config(args, "gru4rec") if args.config or args.set else None
    check_model(args.model)
    check_source(args.input, "--input")
    recs = recommend(
        get_spark(args.remote),
        args.model,
        args.input,
        args.n,
        output=args.output,
        config=config,
        every_prefix=args.every_prefix,
        user_col=args.user_col,
        sep=args.sep,
        model_dir=args.model_dir,
        tracking_uri=args.tracking_uri,
    )
    _show(recs, args, "recommendations")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from spark_recs.data.sources import check_source
    from spark_recs.serving.references import check_model
    from spark_recs.tasks.scoring import predict

    check_model(args.model)
    check_source(args.input, "--input")
    preds = predict(
        get_spark(args.remote),
        args.model,
        args.input,
        output=args.output,
        user_col=args.user_col,
        item_col=args.item_col,
        sep=args.sep,
        model_dir=args.model_dir,
        tracking_uri=args.tracking_uri,
    )
    _show(preds, args, "predictions")
    return 0


def _multieval(args: argparse.Namespace) -> int:
    from spark_recs.data.sources import check_source
    from spark_recs.evaluation.multieval.plan import run_ids
    from spark_recs.tasks import run
    from spark_recs.tasks.multieval import genres_folder, multieval_path, multieval_summary

    config = _config(args, "multieval")
    check_source(config["data"]["ratings"], "data.ratings")
    genres_folder(config["data"])
    if args.runs:
        run_ids(args.runs, 0)  # the selection's syntax, before Spark starts
    spark, folder = get_spark(args.remote), Path(multieval_path(config))
    if args.plan:
        planned = run("plan", spark, config, tracking_uri=args.tracking_uri)
        print(planned.to_string(index=False))
        print(
            f"{len(planned)} runs planned in {folder} ({int(planned['done'].sum())} done); run them with "
            "--runs <slice k/n, ranges, RunIds> (one task each), then --collect"
        )
        return 0
    if args.collect:
        results = run("collect", spark, config, tracking_uri=args.tracking_uri)
    else:
        results = run("multieval", spark, config, runs=args.runs, tracking_uri=args.tracking_uri)
    ok = results["status"] == "ok"
    if ok.any():
        print(multieval_summary(results[ok]).to_string())
    for _, row in results[~ok].iterrows():
        print(f"RunId {row['RunId']} ({row['AlgoStr']}, partition {row['Partition']}): {row['status']}")
    if args.runs:
        print(
            f"{int(ok.sum())} of the {len(results)} selected runs ok; then: --collect builds the runs table"
        )
    else:
        print(f"runs table: {folder / 'runs.csv'}; MLflow experiment {config['evaluation']['experiment']!r}")
    _print_store(args.tracking_uri)
    return 0 if ok.all() else 1


def _job(args: argparse.Namespace) -> int:
    from spark_recs.bundle import Bundle, run_job
    from spark_recs.runtime import work_dir

    params = dict(_assignment(p) for p in args.param)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = work_dir() / "jobs" / args.name / stamp
    bundle = Bundle(args.bundle)
    return run_job(
        bundle, args.name, target=args.target, params=params, concurrency=args.concurrency, logs=logs
    )


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise ValueError(f"--param {text!r}: expected name=value")
    return name, value


def _common() -> argparse.ArgumentParser:
    """Options every subcommand accepts (also after the subcommand, as wheel tasks pass them)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--remote",
        default=argparse.SUPPRESS,
        help="Spark Connect URL (sc://host:port); default $SPARK_REMOTE or local Spark",
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs"
    )
    return common


def _add(sub, name: str, summary: str, description: str, examples: list[str], run, config: bool = True):
    parser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common()],
    )
    if config:
        parser.add_argument("--config", help=CONFIG_HELP)
        parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=SET_HELP)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-recs",
        description="Recommender pipelines on Spark and Databricks. `spark-recs COMMAND --help` shows examples.",
        parents=[_common()],
    )
    parser.set_defaults(remote=None, debug=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _add(
        sub,
        "demo",
        "run the main job end to end (synthetic sessions by default)",
        "Load, validate, index and split a session log, train Popular, recommend the top 20 after every test "
        "event with a pandas UDF, compute Recall@20/MRR@20 and log the run to MLflow. Flags override the "
        "config (conf/demo.yaml documents every key).",
        [
            "spark-recs demo",
            "spark-recs demo --config conf/demo.yaml --set data.n_events=50000",
            "spark-recs demo --ratings ../shared/data/ml-100k --test-days 30",
            "spark-recs demo --sessions clicks.tsv --tracking-uri sqlite:///mlflow.db",
        ],
        _demo,
    )
    demo.add_argument("--sessions", help=_demo_help("sessions"))
    demo.add_argument("--ratings", help=_demo_help("ratings"))
    demo.add_argument("--test-days", type=float, help=_demo_help("test_days"))
    demo.add_argument("--events", type=int, help=_demo_help("n_events"))
    demo.add_argument("--items", type=int, help=_demo_help("n_items"))
    demo.add_argument("--seed", type=int, help=_demo_help("seed"))
    demo.add_argument("--sep", help=SEP_HELP)
    demo.add_argument("--tracking-uri", help=TRACKING_HELP)
    demo.add_argument("--output", help=_demo_help("output"))

    prepare = _add(
        sub,
        "prepare",
        "validate a session log and split it by time into train/valid/test",
        "Load and validate a SessionId, ItemId, Time session log (rejected rows are kept with a reason), split "
        "whole sessions by time with the config's data_split fractions (GRU4Rec's train_valid_test_split) and "
        "write sessions_train, sessions_valid, sessions_test and sessions_rejected under --output.",
        [
            "spark-recs prepare --config conf/example.yaml --input clicks.tsv --output ./prepared",
            "spark-recs prepare --config conf/example.yaml --input main.recs.clicks --output main.recs",
            "spark-recs prepare --input data.tsv --output ./prepared --set data.session_key=session_id",
        ],
        _prepare,
    )
    prepare.add_argument(
        "--input", required=True, help="session log: TSV/CSV file, Delta/Parquet path or catalog.schema.table"
    )
    prepare.add_argument(
        "--output",
        required=True,
        help="a folder (a path with '/') or a schema (catalog.schema) to write the sessions_* tables to",
    )
    prepare.add_argument("--sep", help=SEP_HELP)

    train = _add(
        sub,
        "train",
        "train the model of a config (GRU4Rec, an RL actor, the Gym PPO agent), tracked and registered in MLflow",
        "Fit the model the config describes. kind: gru4rec (the default, conf/example.yaml): GRU4Rec on the "
        "train sessions that prepare wrote, validating on the valid sessions after every epoch; params, "
        "per-epoch loss and validation Recall/MRR go to MLflow, the model to paths.model_save, and it is "
        "registered with an alias. kind: rl (conf/rl-*.yaml): a recnn-style actor (DDPG, TD3, BCQ, REINFORCE) "
        "on the config's ratings. kind: gym (conf/gym.yaml): PPO on the MovieLens rating environment, "
        "scored against baselines. rl and gym read their data and MLflow settings from the config.",
        [
            "spark-recs train --config conf/example.yaml --input ./prepared",
            "spark-recs train --config conf/example.yaml --input ./prepared --set model.n_epochs=2 --register-as ''",
            "spark-recs train --config conf/example.yaml --input main.recs --register-as main.recs.gru4rec",
            "spark-recs train --config conf/rl-ddpg.yaml --set training.epochs=2",
            "spark-recs train --config conf/gym.yaml --set ppo.total_timesteps=200000",
        ],
        _train,
    )
    train.add_argument("--input", help="gru4rec: where prepare wrote the sessions (folder or catalog.schema)")
    train.add_argument(
        "--experiment",
        help="MLflow experiment (default: spark_recs-gru4rec, or the config's mlflow.experiment)",
    )
    train.add_argument(
        "--register-as",
        metavar="NAME",
        help="registered model name (catalog.schema.model on Databricks); '' to skip "
        "(default: spark_recs-gru4rec, or the config's mlflow.registered_model)",
    )
    train.add_argument(
        "--alias", help="alias of the new version (default challenger, or the config's mlflow.alias)"
    )
    train.add_argument("--tracking-uri", help=TRACKING_HELP)

    evaluate = _add(
        sub,
        "evaluate",
        "Recall@N/MRR@N of a session model on the prepared test sessions, logged to MLflow",
        "Score every next-item prediction of the prepared test sessions with the config's evaluation settings "
        "(cutoff, batch_size, tie mode), sharded over Spark workers, and log the metrics to an MLflow run.",
        [
            "spark-recs evaluate --config conf/example.yaml --input ./prepared   # model: paths.model_save",
            "spark-recs evaluate --config conf/example.yaml --input ./prepared --model models:/spark_recs-gru4rec@challenger",
            "spark-recs evaluate --input ./prepared --model model.pth --set evaluation.cutoff=[5,10,20]",
        ],
        _evaluate,
    )
    evaluate.add_argument("--input", required=True, help="where prepare wrote the sessions")
    evaluate.add_argument(
        "--model", help="model file or MLflow URI (default: paths.model_load, else paths.model_save)"
    )
    evaluate.add_argument("--experiment", default="spark_recs-gru4rec", help="MLflow experiment")
    evaluate.add_argument("--model-dir", help="Spark Connect: a folder the workers can read (a Volume path)")
    evaluate.add_argument("--tracking-uri", help=TRACKING_HELP)

    tune = _add(
        sub,
        "tune",
        "search a model's parameters with Optuna, one Spark task per trial, tracked in MLflow",
        "Run (or continue) the study of the config's tune section over its search space (tune.space, a file "
        "in the official paramspaces format, or the search_space section), as Spark tasks, tune.parallelism "
        "at once. kind: gru4rec: each trial trains GRU4Rec on the prepared train sessions (--input) and is "
        "scored on the valid sessions; kind: multieval: the config's one algorithm is fitted on a train "
        "split of its ratings and scored on held-out validation ratings; kind: rl: the RL algorithm trains "
        "on each user's ratings but the last two and is scored on the one before the last. One parent "
        "MLflow run per study, "
        "one nested run per trial; the best config goes to tune.best_config. A killed search continues "
        "where it stopped. --train-best then trains the best config on train + valid, evaluates it once on "
        "test and registers it.",
        [
            "spark-recs tune --config conf/tune-gru4rec-rsc15.yaml --input ./prepared",
            "spark-recs tune --config conf/tune-gru4rec-rsc15.yaml --input ./prepared --set tune.n_trials=4",
            "spark-recs tune --config conf/tune-gru4rec-rsc15.yaml --input ./prepared --train-best --alias tuned",
            "spark-recs tune --config conf/tune-itemknn-ml-latest-small.yaml --train-best",
            "spark-recs tune --config conf/tune-rl-ddpg.yaml --set tune.n_trials=10",
        ],
        _tune,
    )
    tune.add_argument("--input", help="gru4rec: where prepare wrote the sessions (folder or catalog.schema)")
    tune.add_argument("--experiment", help="MLflow experiment (default: the config's tune.experiment)")
    tune.add_argument(
        "--train-best",
        action="store_true",
        help="train the best config on train + valid, test it once, register it",
    )
    tune.add_argument(
        "--register-as",
        metavar="NAME",
        help="--train-best: registered model name; '' to skip (default spark_recs-gru4rec, spark_recs-<class>)",
    )
    tune.add_argument("--alias", help="--train-best: alias of the new version (default challenger)")
    tune.add_argument("--tracking-uri", help=TRACKING_HELP)

    promote = _add(
        sub,
        "promote",
        "move a registered model's champion alias to its challenger when the challenger scores better",
        "Score the promotion.challenger and promotion.champion versions of --registered-model on held-out "
        "data (kind: gru4rec: the prepared test sessions, the config's evaluation settings, sharded over "
        "Spark; kind: rl: the temporal holdout of the config's ratings), log both, their "
        "differences and the decision to one MLflow run, and move the champion alias to the challenger "
        "only if its promotion.primary metric beats the champion's by more than promotion.margin and no "
        "promotion.guards metric falls by more than its tolerance. Without a champion the challenger "
        "becomes champion.",
        [
            "spark-recs promote --config conf/example.yaml --input ./prepared",
            "spark-recs promote --input main.recs --registered-model main.recs.gru4rec --set promotion.margin=0.005",
            "spark-recs promote --input ./prepared --set 'promotion.guards=[\"mrr@20:0.01\"]'",
            "spark-recs promote --config conf/rl-ddpg.yaml --set 'promotion.guards=[\"coverage@10:0.01\"]'",
        ],
        _promote,
    )
    promote.add_argument("--input", help="gru4rec: where prepare wrote the sessions")
    promote.add_argument(
        "--registered-model",
        help="registered model name (default spark_recs-gru4rec, or an RL config's mlflow.registered_model)",
    )
    promote.add_argument(
        "--experiment", default="spark_recs-promote", help="MLflow experiment of the decision"
    )
    promote.add_argument("--model-dir", help="Spark Connect: a folder the workers can read (a Volume path)")
    promote.add_argument("--tracking-uri", help=TRACKING_HELP)

    recommend = _add(
        sub,
        "recommend",
        "batch top-N recommendations for sessions (session models) or users (user models)",
        "Load a model (file, models:/name@alias or runs:/id/model) and recommend the top N over Spark: for a "
        "session model after the last event of each session of --input (columns from --config data), for a "
        "user model for each user of --input. Writes --output (a table or path), else prints the first rows.",
        [
            "spark-recs recommend --model model.pth --input clicks.tsv --n 20 --output ./recs",
            "spark-recs recommend --model models:/main.recs.gru4rec@champion --input main.recs.sessions_test "
            "--output main.recs.gru4rec_recs",
            "spark-recs recommend --model bias.pt --input users.csv --n 100   # user model: a user column",
        ],
        _recommend,
    )
    recommend.add_argument("--model", required=True, help="model file or MLflow model URI")
    recommend.add_argument("--input", required=True, help="sessions (session model) or users (user model)")
    recommend.add_argument("--n", type=_positive_int, default=20, help="list length (default 20)")
    recommend.add_argument("--output", help="table or path to write (default: print the first rows)")
    recommend.add_argument(
        "--every-prefix", action="store_true", help="session models: recommend after every event"
    )
    recommend.add_argument("--user-col", default="user", help="user models: the user column (default user)")
    recommend.add_argument("--sep", help=SEP_HELP)
    recommend.add_argument("--model-dir", help="Spark Connect: a folder the workers can read (a Volume path)")
    recommend.add_argument("--tracking-uri", help=TRACKING_HELP)

    predict = _add(
        sub,
        "predict",
        "batch rating predictions of a user model for user-item pairs",
        "Load a user model (Bias, BiasedMF, ItemKNN, ...; a file or MLflow URI) and add a prediction column "
        "to every user, item pair of --input (other columns such as rating are kept).",
        [
            "spark-recs predict --model bias.pt --input ../shared/data/ml-latest-small --output ./predictions",
            "spark-recs predict --model models:/main.recs.biasedmf@champion --input main.recs.pairs "
            "--output main.recs.predictions",
        ],
        _predict,
        config=False,
    )
    predict.add_argument("--model", required=True, help="user model file or MLflow model URI")
    predict.add_argument(
        "--input", required=True, help="user, item pairs: file, path, table or MovieLens folder"
    )
    predict.add_argument("--output", help="table or path to write (default: print the first rows)")
    predict.add_argument("--user-col", default="user", help="user column (default user)")
    predict.add_argument("--item-col", default="item", help="item column (default item)")
    predict.add_argument("--sep", help=SEP_HELP)
    predict.add_argument("--model-dir", help="Spark Connect: a folder the workers can read (a Volume path)")
    predict.add_argument("--tracking-uri", help=TRACKING_HELP)

    multieval = _add(
        sub,
        "multieval",
        "compare algorithms LensKit-style (datasets x partitions x algorithms), tracked in MLflow",
        "Load and validate ratings, cut them into user crossfolds, fit every algorithm on every fold, "
        "recommend and predict over Spark, compute LensKit metrics, write runs.csv, the recommendations and "
        "predictions, and log a parent MLflow run with one nested run per RunId.",
        [
            "spark-recs multieval --config conf/multieval-ml-latest-small.yaml",
            "spark-recs multieval --config conf/multieval-ml-latest-small.yaml --set split.partitions=2",
            "spark-recs multieval --config conf/multieval-ml-latest-small.yaml --plan     # fanned out:",
            "spark-recs multieval --config conf/multieval-ml-latest-small.yaml --runs 2/4  # one task each",
            "spark-recs multieval --config conf/multieval-ml-latest-small.yaml --collect",
        ],
        _multieval,
    )
    fan_out = multieval.add_mutually_exclusive_group()
    fan_out.add_argument(
        "--plan",
        action="store_true",
        help="split and persist the folds, create the parent run, list the runs",
    )
    fan_out.add_argument(
        "--runs",
        nargs="+",
        metavar="RUNS",
        help="only these runs: RunIds (3), ranges (1-4) or a slice k/n of the plan (2/4), comma-separated "
        "too; leaves the runs table and plots to --collect (default: every run, then those)",
    )
    fan_out.add_argument(
        "--collect",
        action="store_true",
        help="rebuild the runs table and plots and log them to the parent run",
    )
    multieval.add_argument("--tracking-uri", help=TRACKING_HELP)

    job = _add(
        sub,
        "job",
        "run a job of the Databricks bundle on this machine: the same tasks, entry points and parameters",
        "Read databricks.yml and resources/*.yml, resolve the job for --target and run its tasks in "
        "dependency order, each python_wheel_task as its spark_recs entry point in its own process (so its "
        "own local Spark), a for_each_task once per input; the job parameters take their defaults or "
        "--param values. Each task's output goes to a log file under the work dir; a failed task stops "
        "the job.",
        [
            "spark-recs job spark_recs_multieval --param ratings=../shared/data/ml-latest-small "
            "--param path=.spark_recs/multieval-job --param results_table=.spark_recs/multieval-job/results",
        ],
        _job,
        config=False,
    )
    job.add_argument("name", help="the job's resource name, e.g. spark_recs_multieval")
    job.add_argument("--target", default="dev", help="the bundle target whose variables apply (default dev)")
    job.add_argument("--param", action="append", default=[], help="a job parameter, name=value (repeatable)")
    job.add_argument(
        "--concurrency",
        type=_positive_int,
        default=1,
        help="at most this many iterations of a for_each_task at once (default 1: each starts a local Spark)",
    )
    job.add_argument("--bundle", default=".", help="the bundle's folder, holding databricks.yml (default .)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a user error prints one line naming the problem and exits 2 (``--debug``: raise)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # else one bar line per model file
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except (ValueError, KeyError, FileNotFoundError, AnalysisException) as exc:
        if args.debug:
            raise
        print(
            f"spark-recs {args.command}: error: {_one_line(exc)} (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 2


def _one_line(exc: Exception) -> str:
    """A user error as one line: the command-line form of a schema error, the first line of Spark's."""
    if isinstance(exc, SchemaError):
        return exc.message(command_line=True)
    if isinstance(exc, AnalysisException):  # Spark appends plans and JVM traces after the first line
        return str(exc).strip().splitlines()[0]
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _step(command: str):
    def run() -> None:
        sys.exit(main([command, *sys.argv[1:]]))

    run.__doc__ = f"Entry point of ``spark-recs {command}`` (console script and Databricks wheel task)."
    return run


# Console scripts / python_wheel_task entry points (pyproject.toml [project.scripts]); they exit with the code.
prepare_main = _step("prepare")
train_main = _step("train")
evaluate_main = _step("evaluate")
tune_main = _step("tune")
promote_main = _step("promote")
recommend_main = _step("recommend")
predict_main = _step("predict")
multieval_main = _step("multieval")


if __name__ == "__main__":
    sys.exit(main())
