"""Studies: direction from the metric, seeded samplers, and resuming a killed search from its storage."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from spark_recs.core.params import ConfigError
from spark_recs.models import BiasedMF
from spark_recs.tuning import search_space
from spark_recs.tuning.study import direction, finished, open_study, sampler

SPACE = {
    "features": {"dtype": "int", "values": [10, 50], "step": 10},
    "reg": {"dtype": "float", "values": [0.0, 0.5], "step": 0.1},
}


def score(params: dict) -> float:
    """A known objective: best at 30 features and reg 0.2."""
    return -abs(params["features"] - 30) - abs(params["reg"] - 0.2)


@pytest.mark.parametrize(
    "metric, expected",
    [("recall@20", "maximize"), ("MRR@5", "maximize"), ("ndcg@10", "maximize"), ("rmse", "minimize")],
)
def test_the_direction_follows_the_metric(metric, expected):
    assert direction(metric) == expected


@pytest.mark.parametrize("metric", ["recall", "recall@0", "rmse@5", "auc@10", "ndcg@ten"])
def test_a_metric_that_cannot_be_optimised_is_a_one_line_error(metric):
    with pytest.raises(ConfigError, match="cannot optimise"):
        direction(metric)


def run(study, space, budget):
    while finished(study) < budget:
        trial = study.ask()
        study.tell(trial, score(space.suggest(trial)))


@pytest.mark.parametrize("name", ["tpe", "random", "grid"])
def test_same_seed_same_trials_and_best_value(tmp_path, name):
    space = search_space(SPACE, BiasedMF)

    def search(folder):
        study = open_study("s", "recall@10", sampler(name, 7, space), f"sqlite:///{tmp_path / folder}.db")
        run(study, space, 6)
        return [t.params for t in study.trials], study.best_value

    assert search("a") == search("b")


def test_a_killed_search_resumes_with_the_budget_and_no_repeated_parameters(tmp_path):
    space, storage = search_space(SPACE, BiasedMF), f"sqlite:///{tmp_path}/tuning.db"
    study = open_study("killed", "recall@10", sampler("grid", 1, space), storage)
    run(study, space, 3)
    running = study.ask()  # the search dies with this trial running
    left_running = space.suggest(running)

    resumed = open_study("killed", "recall@10", sampler("grid", 1, space), storage)
    states = [t.state for t in resumed.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.FAIL, TrialState.WAITING]
    retried = resumed.ask()
    assert space.suggest(retried) == left_running and retried.user_attrs == {"retry_of": 3}
    resumed.tell(retried, score(left_running))
    run(resumed, space, 8)

    complete = [t for t in resumed.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 8


def test_a_study_cannot_change_its_direction(tmp_path):
    space, storage = search_space(SPACE, BiasedMF), f"sqlite:///{tmp_path}/tuning.db"
    open_study("same", "recall@10", sampler("tpe", 0, space), storage)
    with pytest.raises(ConfigError, match="maximizes its metric, but rmse is to minimize"):
        open_study("same", "rmse", sampler("tpe", 0, space), storage)
    with pytest.raises(ConfigError, match="sampler must be one of"):
        sampler("cmaes", 0, space)
    assert isinstance(sampler("grid", 0, space), optuna.samplers.GridSampler)
