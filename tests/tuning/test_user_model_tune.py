"""`spark-recs tune` for a user model (kind: multieval) on MovieLens latest-small: MultiEval's first fold
is the test split, its train split again into train and valid; the trials score on valid exactly what
the model scores when fitted in-process, the best config is a MultiEval config, --train-best registers."""

from __future__ import annotations

import mlflow
import optuna
import pytest
import yaml
from conftest import shared_data
from optuna.trial import TrialState

from spark_recs.cli import main
from spark_recs.config import load_config
from spark_recs.data.io import collect_columns
from spark_recs.data.sources import read_ratings
from spark_recs.models import Bias
from spark_recs.tasks import run
from spark_recs.tasks.multieval import search_splits
from spark_recs.tuning.objectives import user_model_score


def tune_config(tmp_path, **changes) -> dict:
    config = load_config(None, schema="multieval")
    config["data"] = {"ratings": str(shared_data("ml-latest-small")), "name": "ml-latest-small"}
    config["algorithms"] = [{"class": "Bias", "params": {"damping": 5.0}}]
    config["search_space"] = {"damping": {"dtype": "categorical", "values": [0.0, 5.0, 25.0]}}
    config["tune"] |= {
        "storage": f"sqlite:///{tmp_path / 'tuning.db'}",
        "best_config": str(tmp_path / "best.yaml"),
        "metric": "rmse",
        "sampler": "grid",
        "n_trials": 3,
        "parallelism": 2,
    } | changes
    return config


def test_trials_score_the_validation_users_as_the_model_does_in_process(any_spark, tmp_path, mlflow_uri):
    config = tune_config(tmp_path)
    tuned = run("tune", any_spark, config)

    study = optuna.load_study(study_name="tune", storage=config["tune"]["storage"])
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    ratings = read_ratings(any_spark, config["data"]["ratings"], "ratings").accepted
    _, test, inner, valid = search_splits(ratings, config["split"])
    assert not collect_columns(test, test.columns).merge(collect_columns(valid, valid.columns)).shape[0]
    inner, valid = collect_columns(inner, inner.columns), collect_columns(valid, valid.columns)
    for trial in study.trials:
        expected = user_model_score(Bias(damping=trial.params["damping"]).fit(inner), valid, "rmse", 100)
        assert trial.value == pytest.approx(expected, rel=1e-12)
    assert tuned.best_value == min(t.value for t in study.trials)

    best = load_config(tuned.best_config, schema=None)
    assert best["kind"] == "multieval" and "tune" not in yaml.safe_load(open(tuned.best_config))
    assert best["algorithms"] == [{"class": "Bias", "params": {"damping": tuned.best_params["damping"]}}]


def test_train_best_fits_the_best_itemknn_tests_once_and_registers(spark, tmp_path, mlflow_uri, capsys):
    config = tune_config(tmp_path, metric="ndcg@10", n_trials=2, parallelism=1, sampler="grid")
    config["algorithms"] = [{"class": "ItemKNN", "params": {"save_nbrs": 100}}]
    config["search_space"] = {"nnbrs": {"dtype": "categorical", "values": [10, 30]}}
    config_file = tmp_path / "tune.yaml"
    config_file.write_text(yaml.safe_dump(config))
    argv = ["tune", "--config", str(config_file), "--train-best", "--register-as", "knn", "--alias", "best"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "best valid ndcg@10 = " in out and "test ndcg@10 = " in out

    version = mlflow.MlflowClient().get_model_version_by_alias("knn", "best")
    run_info = mlflow.get_run(version.run_id)
    assert run_info.data.tags["fit_on"] == "train+valid"
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert int(run_info.data.params["model.nnbrs"]) == best["algorithms"][0]["params"]["nnbrs"]
    assert 0 < run_info.data.metrics["test_ndcg_at_10"] < 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"tune.metric": "recall@200"}, "at a cutoff in [1, evaluation.recommend = 100], not 'recall@200'"),
        ({"tune.metric": "rmse"}, "tune.metric rmse: ImplicitMF does not predict ratings"),
    ],
)
def test_a_metric_a_user_model_cannot_be_scored_with_is_refused(tmp_path, changes, message):
    from spark_recs.tasks.multieval import check_tune

    config = tune_config(tmp_path)
    config["algorithms"] = [{"class": "ImplicitMF"}]
    config["search_space"] = {"features": {"dtype": "int", "values": [10, 20]}}
    for key, value in changes.items():
        section, name = key.split(".")
        config[section][name] = value
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_tune(config)


def test_a_search_names_exactly_one_algorithm(tmp_path):
    from spark_recs.tasks.multieval import check_tune

    config = tune_config(tmp_path)
    config["algorithms"] = [{"class": "Bias"}, {"class": "Popular"}]
    with pytest.raises(ValueError, match="tune searches one algorithm's parameters: the config lists 2"):
        check_tune(config)
