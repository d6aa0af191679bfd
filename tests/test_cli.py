"""The spark-recs command: help with examples on every subcommand, one-line user errors, and the steps end to
end on a real local Spark, real MLflow store and real data (hand-made tables and rsc15_100k)."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from spark_recs.cli import main
from spark_recs.config import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
COMMANDS = [
    "demo",
    "prepare",
    "train",
    "evaluate",
    "tune",
    "promote",
    "recommend",
    "predict",
    "multieval",
    "job",
]


def _error_line(capsys) -> str:
    """The one error line a user error prints (and nothing else mentions an error)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line.lower()]
    assert len(errors) == 1 and errors[0] == err[-1], err
    return errors[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"spark-recs {command} " in out.split("examples:")[1]
    assert "--debug" in out


def test_the_top_level_help_lists_every_step(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(f"    {command} " in out for command in COMMANDS)


# ---- user errors: one line naming the problem and the fix, exit 2; --debug raises --------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lyers=[10]", "unknown key 'model.lyers'; did you mean 'model.layers'?"),
        ("data_split.test_fraction=1.5", "data_split.test_fraction = 1.5 is out of range [0, 1)"),
        (
            "evaluation.mode=optimistic",
            "evaluation.mode must be one of ['conservative', 'standard', 'median']",
        ),
    ],
)
def test_a_bad_config_value_is_one_line_naming_the_key(override, message, tmp_path, capsys):
    code = main(
        [
            "prepare",
            "--config",
            str(CONF / "example.yaml"),
            "--set",
            override,
            "--input",
            "x.tsv",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 2
    line = _error_line(capsys)
    assert line.startswith("spark-recs prepare: error: ") and message in line


def test_every_gru4rec_parameter_is_accepted_by_set(tmp_path, capsys):
    """The config is loaded before the input is checked: an error about the input means it was accepted."""
    overrides = [
        "model.clipnorm=null",
        "model.checkpoint_dir=null",
        "model.optimization_algorithm=adagrad",
        "model.stop_early=false",
        "model.predict_topK=null",
        "model.embedding=layersize",
        "model.n_epochs=0",
    ]
    missing = tmp_path / "clicks.tsv"
    argv = [
        "prepare",
        "--config",
        str(CONF / "example.yaml"),
        "--input",
        str(missing),
        "--output",
        str(tmp_path),
    ]
    assert main([*argv, *(arg for o in overrides for arg in ("--set", o))]) == 2
    assert f"{missing} does not exist" in _error_line(capsys)
    assert main([*argv, "--set", "model.clipnorm=0"]) == 2
    assert "model.clipnorm = 0 is out of range (0, inf)" in _error_line(capsys)


def test_the_demo_flags_show_the_declared_defaults(capsys):
    from spark_recs.core.params import declarations
    from spark_recs.tasks.demo import DemoConfig

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    declared = declarations(DemoConfig)
    for field in ("n_events", "n_items", "seed"):
        assert f"{declared[field].doc} (default {declared[field].default})" in out
    assert f"{declared['test_days'].doc} (default 1)" in out and declared["output"].doc in out


def test_debug_shows_the_traceback_instead(tmp_path):
    argv = ["--set", "model.lyers=[10]", "--input", "x.tsv", "--output", str(tmp_path)]
    with pytest.raises(ConfigError, match="did you mean 'model.layers'"):
        main(["--debug", "prepare", *argv])
    with pytest.raises(ConfigError):
        main(["prepare", "--debug", *argv])  # also after the subcommand, as wheel tasks pass it


def test_train_refuses_a_config_of_another_command(tmp_path, capsys):
    code = main(["train", "--config", str(CONF / "demo.yaml"), "--input", str(tmp_path)])
    assert code == 2
    assert "a kind: demo config runs with `spark-recs demo`" in _error_line(capsys)


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "no_such_schema.clicks",
            "table no_such_schema.clicks not found; create it, or pass a file or folder path",
        ),
        ("/no/such/clicks.tsv", "/no/such/clicks.tsv does not exist; pass an existing file or folder"),
        ("main.recs.clicks", "table main.recs.clicks not found (["),  # no catalog 'main' on local Spark
    ],
)
def test_a_missing_table_or_file_is_one_line(spark, source, message, tmp_path, capsys):
    assert main(["prepare", "--input", source, "--output", str(tmp_path / "out")]) == 2
    assert message in _error_line(capsys)


def test_train_before_prepare_says_to_run_prepare(spark, tmp_path, capsys):
    code = main(["train", "--input", str(tmp_path / "prepared"), "--register-as", ""])
    assert code == 2
    line = _error_line(capsys)
    assert f"no prepared train sessions at {tmp_path / 'prepared' / 'sessions_train'}" in line
    assert f"run `spark-recs prepare --output {tmp_path / 'prepared'}` first" in line


def test_an_unknown_registered_model_is_one_line(spark, mlflow_uri, tmp_path, capsys):
    (tmp_path / "users.csv").write_text("user\n1\n")
    code = main(
        ["recommend", "--model", "models:/no-such-model@champion", "--input", str(tmp_path / "users.csv")]
    )
    assert code == 2
    assert "cannot load model models:/no-such-model@champion from the MLflow store" in _error_line(capsys)


# ---- prepare on a hand-made log: the wrong column, then the mapping that fixes it ---------------------

# Session -> end time; sorted by end: 2, 6, 4, 8, 3, 10, 9, 7, 1, 5 (ten sessions of two events each).
ENDS = {1: 900, 2: 100, 3: 500, 4: 300, 5: 1000, 6: 200, 7: 800, 8: 400, 9: 700, 10: 600}


def _clicks(path: Path) -> Path:
    rows = [f"{s}\t{s % 3}\t{end - 10}\n{s}\t{s % 3 + 1}\t{end}" for s, end in ENDS.items()]
    rows += ["2\t3\t100", "11\t3\tnot-a-time"]  # an exact duplicate and an unparseable time
    path.write_text("Session\tItemId\tTime\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_prepare_names_a_wrong_column_then_splits_whole_sessions_by_time(spark, tmp_path, capsys):
    clicks = _clicks(tmp_path / "clicks.tsv")
    out = tmp_path / "prepared"
    base = ["prepare", "--input", str(clicks), "--output", str(out), "--set", "data_split.valid_fraction=0.2"]
    base += ["--set", "data_split.test_fraction=0.2"]

    assert main(base) == 2
    line = _error_line(capsys)
    assert "missing column(s) 'SessionId' (did you mean 'Session'?)" in line
    assert "columns found: ['Session', 'ItemId', 'Time']" in line and "session_key" in line

    assert main([*base, "--set", "data.session_key=Session"]) == 0
    printed = capsys.readouterr().out
    assert "rows in 22 = accepted 20 + rejected 2" in printed
    parts = {p: pd.read_parquet(out / f"sessions_{p}") for p in ("train", "valid", "test", "rejected")}
    # round(0.2 * 10) = 2 sessions each: the two latest-ending to test, the two before them to valid.
    assert set(parts["test"]["Session"]) == {1, 5}
    assert set(parts["valid"]["Session"]) == {9, 7}
    assert set(parts["train"]["Session"]) == {2, 6, 4, 8, 3, 10}
    assert sum(len(parts[p]) for p in ("train", "valid", "test")) == 20
    assert dict(zip(parts["rejected"]["Session"], parts["rejected"]["reason"])) == {
        "2": "duplicate event",
        "11": "unparseable Time",
    }


# ---- GRU4Rec end to end: prepare -> train -> evaluate -> recommend ------------------------------------


def _ranks_from_recommendations(test: pd.DataFrame, recs: pd.DataFrame, known: set) -> tuple[int, list]:
    """Next-item predictions and the rank of each target in its top-20 list (None when absent), computed
    from the batch recommendations made after every event."""
    test = test[test["ItemId"].isin(known)].sort_values(["SessionId", "Time", "ItemId"])
    lists = {(s, p): dict(zip(g["item"], g["rank"])) for (s, p), g in recs.groupby(["SessionId", "position"])}
    ranks = []
    for session, events in test.groupby("SessionId"):
        items = events["ItemId"].tolist()
        for position in range(1, len(items)):
            ranks.append(lists.get((session, position), {}).get(items[position]))
    return len(ranks), ranks


@pytest.mark.slow
def test_gru4rec_steps_end_to_end(spark, mlflow_uri, tmp_path, capsys, one_torch_thread):
    from spark_recs.models.gru4rec import GRU4Rec

    source = shared_data("sessions/rsc15_100k/yoochoose-clicks-100k_test.txt")
    out, model_file, recs_out = tmp_path / "prepared", tmp_path / "gru.pt", tmp_path / "recs"
    assert (
        main(
            ["prepare", "--config", str(CONF / "example.yaml"), "--input", str(source), "--output", str(out)]
        )
        == 0
    )
    assert "rows in 13,568 = accepted 13,568 + rejected 0" in capsys.readouterr().out

    tiny = ["--set", "model.layers=[32]", "--set", "model.n_epochs=2", "--set", "model.n_sample=0"]
    tiny += ["--set", f"paths.model_save={model_file}", "--set", "evaluation.cutoff=[5,20]"]
    assert main(["train", "--input", str(out), *tiny, "--register-as", "test-gru4rec"]) == 0
    printed = capsys.readouterr().out
    assert "model: models:/test-gru4rec@challenger" in printed
    assert (
        f" in {mlflow_uri}\n  see it with: " in printed
        and f"mlflow ui --backend-store-uri {mlflow_uri}" in printed
    )

    client = mlflow.MlflowClient()
    run = mlflow.search_runs(
        experiment_names=["spark_recs-gru4rec"], filter_string="run_name = 'train-gru4rec'"
    )
    assert len(run) == 1
    run_id = run["run_id"][0]
    assert run["params.model.layers"][0] == "[32]" and run["params.data_split.test_fraction"][0] == "0.1"
    for metric in ("train_loss", "valid_recall_at_5", "valid_recall_at_20", "valid_mrr_at_20"):
        assert [m.step for m in client.get_metric_history(run_id, metric)] == [1, 2]
    recall = [m.value for m in client.get_metric_history(run_id, "valid_recall_at_20")]
    mrr = [m.value for m in client.get_metric_history(run_id, "valid_mrr_at_20")]
    assert all(0 < m <= r <= 1 for m, r in zip(mrr, recall))
    assert client.get_model_version_by_alias("test-gru4rec", "challenger").run_id == run_id

    std = ["--set", "evaluation.mode=standard", "--set", "evaluation.cutoff=[5,20]"]
    assert main(["evaluate", "--input", str(out), "--model", "models:/test-gru4rec@challenger", *std]) == 0
    evaluation = mlflow.search_runs(
        experiment_names=["spark_recs-gru4rec"], filter_string="run_name = 'evaluate'"
    )
    metrics = evaluation.iloc[0]
    assert f"recall@20 = {metrics['metrics.recall_at_20']:.4f}" in capsys.readouterr().out

    assert (
        main(
            [
                "recommend",
                "--model",
                str(model_file),
                "--input",
                str(out / "sessions_test"),
                "--every-prefix",
                "--output",
                str(recs_out),
            ]
        )
        == 0
    )
    recs = pd.read_parquet(recs_out)
    assert (
        recs.groupby(["SessionId", "position"])["rank"].agg(list).map(lambda r: r == list(range(1, 21))).all()
    )

    # Two code paths agree: GRU4Rec's evaluation (target ranks over all items, on the Spark workers) and
    # the batch top-20 lists after every event. Float ties at the list boundary could differ by a target.
    known = set(GRU4Rec.load(model_file).item_ids.tolist())
    n, ranks = _ranks_from_recommendations(pd.read_parquet(out / "sessions_test"), recs, known)
    assert n == metrics["metrics.n_predictions"]
    for cutoff in (5, 20):
        hits = [r for r in ranks if r is not None and r <= cutoff]
        assert abs(len(hits) / n - metrics[f"metrics.recall_at_{cutoff}"]) <= 1 / n
        assert abs(sum(1 / r for r in hits) / n - metrics[f"metrics.mrr_at_{cutoff}"]) <= 1 / n

    assert main(["predict", "--model", str(model_file), "--input", str(out / "sessions_test")]) == 2
    assert "is a session model (GRU4Rec) and predicts no ratings" in _error_line(capsys)


# ---- user models: predict and recommend with a hand-checkable Bias model ------------------------------

RATINGS = pd.DataFrame(
    {"user": [1, 1, 2, 2, 3, 3], "item": [10, 20, 10, 30, 20, 30], "rating": [4.0, 2, 5, 3, 1, 5]}
)


def _bias_by_hand(ratings: pd.DataFrame):
    mu = ratings["rating"].mean()
    b_i = (ratings["rating"] - mu).groupby(ratings["item"]).mean()
    b_u = (ratings["rating"] - mu - ratings["item"].map(b_i)).groupby(ratings["user"]).mean()
    return mu, b_i, b_u


def test_user_model_predict_and_recommend_from_csv(spark, tmp_path, capsys):
    from spark_recs.models.bias import Bias

    model = tmp_path / "bias.pt"
    Bias(damping=0).fit(RATINGS).save(model)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item,rating\n1,30,4\n2,20,1\n3,10,5\n4,10,3\n1,99,2\n")  # user 4, item 99: unknown

    assert (
        main(["predict", "--model", str(model), "--input", str(pairs), "--output", str(tmp_path / "preds")])
        == 0
    )
    preds = pd.read_parquet(tmp_path / "preds").sort_values(["user", "item"])
    mu, b_i, b_u = _bias_by_hand(RATINGS)
    expected = [mu + b_i.get(i, 0.0) + b_u.get(u, 0.0) for u, i in zip(preds["user"], preds["item"])]
    np.testing.assert_allclose(preds["prediction"], expected, rtol=1e-9)
    # By hand: mu = 10/3, b_i = {10: 7/6, 20: -11/6, 30: 2/3}, b_u = {1: 0, 2: -1/4, 3: 1/4}.
    np.testing.assert_allclose(expected, [4.0, 10 / 3, 1.25, 4.75, 4.5])
    assert preds["rating"].tolist() == ["4", "2", "1", "5", "3"]  # the other columns are kept as read

    users = tmp_path / "users.csv"
    users.write_text("user\n1\n2\n4\n")
    assert (
        main(
            [
                "recommend",
                "--model",
                str(model),
                "--input",
                str(users),
                "--n",
                "2",
                "--output",
                str(tmp_path / "recs"),
            ]
        )
        == 0
    )
    recs = pd.read_parquet(tmp_path / "recs").sort_values(["user", "rank"])
    # Unrated items by mu + b_i + b_u: user 1 has only item 30 left, user 2 only item 20; unknown user 4
    # gets every item by item bias (10: +1.17, 30: +0.67).
    assert list(zip(recs["user"], recs["rank"], recs["item"])) == [
        (1, 1, 30),
        (2, 1, 20),
        (4, 1, 10),
        (4, 2, 30),
    ]


@pytest.mark.parametrize("schema", ["gru4rec", "demo", "multieval"])
def test_the_readme_config_reference_lists_every_key(schema):
    from spark_recs.config import schemas

    readme = (CONF.parent / "README.md").read_text()
    reference = readme[readme.index("## Configuration reference") :]
    missing = [
        f"{s}.{k}"
        for s, keys in schemas()[schema].items()
        for k in ([] if callable(keys) else keys)
        if f"`{s}.{k}`" not in reference
    ]
    assert not missing, f"README's configuration reference lacks {missing}"


# ---- arguments are checked before Spark starts -------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["recommend", "--model", "m.pt", "--input", "u.csv", "--n", "-5"],
            "argument --n: must be a whole number >= 1, got '-5'",
        ),
        (
            ["recommend", "--model", "m.pt", "--input", "u.csv", "--n", "0"],
            "argument --n: must be a whole number >= 1, got '0'",
        ),
        (["recommend", "--model", "{tmp}/m.pt", "--input", "u.csv"], "no model at {tmp}/m.pt"),
        (
            ["recommend", "--model", "{tmp}/bias.pt", "--input", "{tmp}/users.csv"],
            "--input: {tmp}/users.csv does not exist",
        ),
        (
            ["predict", "--model", "{tmp}/bias.pt", "--input", "{tmp}/pairs.csv"],
            "--input: {tmp}/pairs.csv does not exist",
        ),
        (
            ["prepare", "--input", "{tmp}/clicks.tsv", "--output", "{tmp}/out"],
            "--input: {tmp}/clicks.tsv does not exist",
        ),
        (["train", "--config", str(CONF / "example.yaml")], "the prepared sessions are needed: pass --input"),
        (
            ["train", "--input", "{tmp}/prepared"],
            "no prepared train sessions at {tmp}/prepared/sessions_train",
        ),
        (
            ["evaluate", "--input", "{tmp}/prepared"],
            "no prepared test sessions at {tmp}/prepared/sessions_test",
        ),
        (
            ["multieval", "--set", "data.ratings={tmp}/ratings.csv"],
            "data.ratings: {tmp}/ratings.csv does not exist",
        ),
        (["tune", "--input", "{tmp}/prepared"], "search space: no dimensions"),
        (
            ["tune", "--config", str(CONF / "tune-gru4rec-rsc15.yaml"), "--input", "{tmp}/prepared"],
            "no prepared train sessions at {tmp}/prepared/sessions_train",
        ),
        (
            [
                "tune",
                "--config",
                str(CONF / "tune-gru4rec-rsc15.yaml"),
                "--input",
                "x",
                "--set",
                "tune.metric=ndcg@10",
            ],
            "tune.metric: GRU4Rec is scored with ['recall@N', 'mrr@N'], not 'ndcg@10'",
        ),
        (
            [
                "tune",
                "--config",
                str(CONF / "tune-gru4rec-rsc15.yaml"),
                "--input",
                "x",
                "--set",
                "tune.n_trials=null",
            ],
            "set tune.n_trials or tune.timeout",
        ),
        (
            [
                "tune",
                "--config",
                str(CONF / "tune-gru4rec-rsc15.yaml"),
                "--input",
                "x",
                "--set",
                "tune.space=s.json",
            ],
            "give the search space once: tune.space (a file) or search_space, not both",
        ),
        (
            ["tune", "--input", "x", "--set", "search_space.layerz={dtype: int, values: [1, 2]}"],
            "search space: GRU4Rec has no parameter 'layerz'; did you mean 'layers'?",
        ),
    ],
)
def test_arguments_are_checked_before_spark_starts(argv, message, tmp_path):
    """Run without Java on the PATH: an argument error must come before any Spark session is needed."""
    import subprocess
    import sys

    from spark_recs.models.bias import Bias

    Bias().fit(RATINGS).save(tmp_path / "bias.pt")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    env = {"PATH": str(Path(sys.executable).parent), "SPARK_RECS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "spark_recs.cli", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert message.replace("{tmp}", str(tmp_path)) in errors[0]
    assert "Java" not in done.stderr and "Traceback" not in done.stderr


# ---- ids keep one type end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_one_bad_item_id_does_not_make_recommendations_vanish(
    spark, mlflow_uri, tmp_path, caplog, one_torch_thread
):
    """A 3,000-row rsc15 extract with one ``abc`` item: prepare types ItemId as strings, GRU4Rec trains on
    strings, and recommending for the prepared test sessions still finds every session with a known item;
    sessions whose items are all unknown are counted, not silently dropped."""
    from spark_recs.models.gru4rec import GRU4Rec

    source = shared_data("sessions/rsc15_100k/yoochoose-clicks-100k_test.txt")
    lines = source.read_text().splitlines()[:3001] + ["99996\tabc\t1396437466.94"]
    clicks = tmp_path / "clicks.tsv"
    clicks.write_text("\n".join(lines) + "\n")
    out, model = tmp_path / "prepared", tmp_path / "m.pth"
    assert main(["prepare", "--input", str(clicks), "--output", str(out)]) == 0
    tiny = ["--set", "model.layers=[16]", "--set", "model.n_epochs=1", "--set", "model.n_sample=0"]
    tiny += ["--set", f"paths.model_save={model}", "--register-as", ""]
    assert main(["train", "--input", str(out), *tiny]) == 0

    recs_out = tmp_path / "recs"
    argv = ["recommend", "--model", str(model), "--input", str(out / "sessions_test"), "--n", "3"]
    with caplog.at_level(logging.WARNING, logger="spark_recs.batch"):
        assert main([*argv, "--output", str(recs_out)]) == 0
    test = pd.read_parquet(out / "sessions_test")
    known = set(GRU4Rec.load(model).item_ids.tolist())
    with_known = {s for s, items in test.groupby("SessionId")["ItemId"] if known & set(items)}
    recs = pd.read_parquet(recs_out)
    assert with_known and set(recs["SessionId"]) == with_known and len(recs) == 3 * len(with_known)
    n_sessions = test["SessionId"].nunique()
    assert n_sessions > len(with_known)  # the extract has test sessions on items seen only in test
    assert f"{n_sessions - len(with_known)} of {n_sessions} sessions skipped" in caplog.text


# ---- hints in the user's vocabulary; inputs of recommend/predict validated --------------------------


def test_a_missing_column_names_the_command_line_setting(spark, tmp_path, capsys):
    clicks = tmp_path / "clicks.tsv"
    clicks.write_text("Session\tItemId\tTime\n1\t2\t3.0\n")
    assert main(["prepare", "--input", str(clicks), "--output", str(tmp_path / "out")]) == 2
    assert "Rename the columns or pass --set data.session_key=Session." in _error_line(capsys)

    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,rating,timestamp\n1,2,3.0,4\n")
    assert main(["demo", "--sessions", str(ratings), "--output", str(tmp_path / "demo")]) == 2
    assert f"it looks like ratings: run `spark-recs demo --ratings {ratings}`" in _error_line(capsys)

    views = tmp_path / "views.csv"
    views.write_text("SessionId;ItemId;Time\n1;2;3.0\n")
    assert main(["prepare", "--input", str(views), "--output", str(tmp_path / "o"), "--sep", ","]) == 2
    assert "the header looks ';'-separated: pass --sep ';'" in _error_line(capsys)


def test_user_model_inputs_are_validated_with_the_models_id_types(spark, tmp_path, capsys):
    from spark_recs.models.bias import Bias

    model = tmp_path / "bias.pt"
    Bias(damping=0).fit(RATINGS).save(model)
    customers = tmp_path / "customers.csv"
    customers.write_text("customer\n1\n")
    assert main(["recommend", "--model", str(model), "--input", str(customers)]) == 2
    assert "pass --user-col customer" in _error_line(capsys)

    users = tmp_path / "users.csv"
    users.write_text('user\n1\n""\nabc\n2\n')
    out = tmp_path / "recs"
    assert (
        main(["recommend", "--model", str(model), "--input", str(users), "--n", "1", "--output", str(out)])
        == 0
    )
    assert "rejected 2 (rejected: null or non-integer user: 2)" in capsys.readouterr().err
    assert sorted(pd.read_parquet(out)["user"]) == [1, 2]  # no list for a null user
    assert pd.read_parquet(f"{out}_rejected")["user"].tolist().count("abc") == 1

    names = tmp_path / "names.csv"
    names.write_text("user\nabc\nxyz\n")
    assert main(["recommend", "--model", str(model), "--input", str(names)]) == 2
    line = _error_line(capsys)
    assert "none of the 2 rows has ids of the model's types (user long)" in line

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\n1,10\n1,10\n,20\n")
    assert (
        main(["predict", "--model", str(model), "--input", str(pairs), "--output", str(tmp_path / "p")]) == 0
    )
    assert len(pd.read_parquet(tmp_path / "p")) == 2  # a repeated pair keeps both rows, the null user is out


@pytest.mark.parametrize(
    "location", ["dbfs:/Volumes/main/recs/clicks.tsv", "s3://bucket/clicks", "main.recs.clicks"]
)
def test_remote_locations_and_tables_are_left_to_spark(location):
    from spark_recs.data.sources import check_source

    check_source(location, "--input")  # nothing local to look at: Spark (or the catalog) decides


def test_no_recommendation_for_any_user_is_an_error_not_an_empty_table(spark, tmp_path, capsys):
    from spark_recs.models.knn import ItemKNN

    model = tmp_path / "knn.pt"
    ItemKNN().fit(RATINGS).save(model)  # no fallback for users it has not seen
    users = tmp_path / "strangers.csv"
    users.write_text("user\n98\n99\n")
    out = tmp_path / "recs"
    argv = ["recommend", "--model", str(model), "--input", str(users)]
    assert main([*argv, "--output", str(out)]) == 2
    assert f"no recommendations for any row of {users} (an empty table was written to {out})" in _error_line(
        capsys
    )
    assert main(argv) == 2
    assert f"no recommendations for any row of {users}: the model knows none" in _error_line(capsys)
