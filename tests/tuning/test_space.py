"""Search spaces: the official paramspaces format and config sections, checked against declarations."""

from __future__ import annotations

import optuna
import pytest

from spark_recs.core.params import ConfigError
from spark_recs.models import BiasedMF, GRU4Rec, ItemKNN
from spark_recs.tuning import search_space

# In the official format: one JSON object per line (values written for this test).
PARAMSPACE = """\
{"name":"layers", "dtype":"int", "values":[32,256], "step":32}
{"name":"batch_size", "dtype":"int", "values":[16, 128], "step":16}
{"name":"learning_rate", "dtype":"float", "values":[0.02, 0.2], "step":0.01}

{"name":"momentum", "dtype":"float", "values":[0.0, 0.5], "step":0.1}
{"name":"loss", "dtype":"categorical", "values":["cross-entropy", "bpr-max"]}
"""


@pytest.fixture
def paramspace(tmp_path):
    path = tmp_path / "gru4rec_parspace.json"
    path.write_text(PARAMSPACE)
    return path


def test_an_official_format_file_loads_and_drives_an_optuna_study(paramspace):
    space = search_space(paramspace, GRU4Rec)
    assert space.names == ["layers", "batch_size", "learning_rate", "momentum", "loss"]
    drawn = []
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    study.optimize(lambda trial: drawn.append(space.suggest(trial)) or 0.0, n_trials=8)
    for params in drawn:
        assert params["layers"] in [[n] for n in range(32, 257, 32)]  # one layer, as the official spaces
        assert params["batch_size"] in range(16, 129, 16)
        assert 0.02 <= params["learning_rate"] <= 0.2 and 0 <= params["momentum"] <= 0.5
        assert round(params["momentum"] * 10, 9).is_integer()
        assert params["loss"] in ("cross-entropy", "bpr-max")
        GRU4Rec(**params)  # every drawn set is one the model accepts


def test_the_same_seed_draws_the_same_trials(paramspace):
    space = search_space(paramspace, GRU4Rec)

    def draws(seed):
        found = []
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(lambda trial: found.append(space.suggest(trial)) or 0.0, n_trials=5)
        return found

    assert draws(1) == draws(1) != draws(2)


def test_a_config_section_as_mapping_or_list_and_its_grid():
    section = {
        "features": {"dtype": "int", "values": [10, 40], "step": 10},
        "reg": {"dtype": "float", "values": [0.1, 0.3], "step": 0.1},
    }
    space = search_space(section, BiasedMF)
    assert space.grid() == {"features": [10, 20, 30, 40], "reg": [0.1, 0.2, 0.3]}
    listed = search_space([{"name": k, **v} for k, v in section.items()], BiasedMF)
    assert listed == space
    knn = search_space({"nnbrs": {"dtype": "int", "values": [5, 80], "log": True}}, ItemKNN)
    drawn = []
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: drawn.append(knn.suggest(trial)["nnbrs"]) or 0.0, n_trials=20)
    assert all(isinstance(n, int) and 5 <= n <= 80 for n in drawn)
    assert sum(n < 20 for n in drawn) > sum(n >= 60 for n in drawn)  # log scale: small values more often


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"name": "lerning_rate", "dtype": "float", "values": [0.01, 0.1]},
            "no parameter 'lerning_rate'; did you mean 'learning_rate'?",
        ),
        ({"name": "learning_rate", "dtype": "real", "values": [0.01, 0.1]}, "dtype 'real'"),
        ({"name": "learning_rate", "dtype": "float", "values": [0.1]}, "needs values [low, high]"),
        ({"name": "learning_rate", "dtype": "float", "values": [0.2, 0.1]}, "needs low < high"),
        (
            {"name": "learning_rate", "dtype": "float", "values": [0.0, 0.1]},
            "learning_rate = 0.0 is out of range (0, inf)",
        ),
        (
            {"name": "momentum", "dtype": "float", "values": [0.0, 1.5]},
            "momentum = 1.5 is out of range [0, 1)",
        ),
        ({"name": "batch_size", "dtype": "float", "values": [16.0, 64.0]}, "batch_size must be an integer"),
        ({"name": "batch_size", "dtype": "int", "values": [16, 64], "step": 0}, "positive int step"),
        ({"name": "layers", "dtype": "int", "values": [0, 64]}, "layers[0] = 0 is out of range [1, inf)"),
        (
            {"name": "loss", "dtype": "categorical", "values": ["cross-entropy", "hinge"]},
            "loss must be one of",
        ),
        (
            {"name": "learning_rate", "dtype": "float", "values": [0.01, 0.1], "step": 0.01, "log": True},
            "log scale needs low > 0 and no step",
        ),
        (
            {"name": "learning_rate", "dtype": "float", "values": [0.01, 0.1], "low": 0},
            "unknown field(s) ['low']",
        ),
    ],
)
def test_bad_dimensions_are_one_line_errors_naming_them(entry, message):
    with pytest.raises(ConfigError) as error:
        search_space([entry], GRU4Rec)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_files_and_empty_or_repeated_spaces(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "layers", "dtype": "int", "values": [32, 64]}\n{"name": \n')
    with pytest.raises(ConfigError, match=r"broken.json:2: not a JSON object"):
        search_space(broken, GRU4Rec)
    with pytest.raises(FileNotFoundError, match="no search space file"):
        search_space(tmp_path / "missing.json", GRU4Rec)
    with pytest.raises(ConfigError, match="no dimensions"):
        search_space([], GRU4Rec)
    twice = [{"name": "momentum", "dtype": "float", "values": [0.0, 0.5]}] * 2
    with pytest.raises(ConfigError, match="momentum is given twice"):
        search_space(twice, GRU4Rec)
    with pytest.raises(ConfigError, match="a float range without a step"):
        search_space(twice[:1], GRU4Rec).grid()


def test_a_model_without_declared_parameters_has_nothing_to_search():
    from spark_recs.models import Popular

    with pytest.raises(ConfigError, match="search space: Popular declares no parameters to search"):
        search_space({"n": {"dtype": "int", "values": [1, 5]}}, Popular)
