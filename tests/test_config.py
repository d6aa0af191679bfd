"""Config loading: defaults, file, overrides, and errors that name the key and the allowed values."""

import inspect
import json
from pathlib import Path

import pytest

from spark_recs.config import ConfigError, defaults, load_config
from spark_recs.core.params import declarations

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_example_config_loads_and_keeps_unset_defaults(tmp_path):
    config = load_config(CONF / "example.yaml")
    assert config["model"]["learning_rate"] == 0.2 and config["model"]["logq"] == 1.0
    assert config["model"]["seed"] == defaults()["model"]["seed"]
    partial = tmp_path / "partial.yaml"
    partial.write_text("model:\n  layers: [64, 32]\n")
    loaded = load_config(partial)
    assert loaded["model"]["layers"] == [64, 32] and loaded["evaluation"]["cutoff"] == [20]


def test_overrides_are_parsed_as_yaml():
    config = load_config(
        CONF / "example.yaml", ["model.layers=[512]", "evaluation.mode=median", "model.momentum=0.1"]
    )
    assert config["model"]["layers"] == [512]
    assert config["evaluation"]["mode"] == "median"
    assert config["model"]["momentum"] == 0.1


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lyers=[10]", "unknown key 'model.lyers'; did you mean 'model.layers'?"),
        ("modle.layers=[10]", "unknown section 'modle'; did you mean 'model'?"),
        ("model.dropout_p_hidden=1.5", "model.dropout_p_hidden = 1.5 is out of range [0, 1)"),
        ("model.batch_size=0", "model.batch_size = 0 is out of range [1, inf)"),
        ("model.loss=hinge", "model.loss must be one of"),
        ("model.constrained_embedding=3", "must be true/false"),
        ("model.n_epochs=true", "must be an integer"),
        ("evaluation.cutoff=[]", "non-empty list"),
        ("model.layers", "section.key=value"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert message in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_multieval_config_builds_every_algorithm():
    from spark_recs.models.knn import ItemKNN
    from spark_recs.tasks.multieval import build_algorithms

    config = load_config(CONF / "multieval-ml-latest-small.yaml", ["split.partitions=2"], schema="multieval")
    assert config["split"]["partitions"] == 2 and config["evaluation"]["recommend"] == 100
    built = dict(build_algorithms(config["algorithms"]))
    assert list(built) == ["Popular", "Bias", "BiasedMF", "ImplicitMF", "ItemKNN", "ItemKNN-implicit"]
    assert isinstance(built["ItemKNN-implicit"], ItemKNN) and built["ItemKNN-implicit"].feedback == "implicit"
    assert built["BiasedMF"].get_params()["features"] == 50


@pytest.mark.parametrize(
    "algorithms, message",
    [
        ([{"class": "Popularr"}], "did you mean 'Popular'"),
        ([{"class": "Bias", "params": {"dampening": 5}}], r"algorithms\[0\].params: .*dampening"),
        ([{"class": "Bias", "weight": 1}], r"unknown key\(s\) \['weight'\]"),
        ([], "non-empty list"),
    ],
)
def test_bad_algorithm_entries_name_the_entry(tmp_path, algorithms, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"algorithms": algorithms}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, schema="multieval")


def test_kind_picks_the_schema_and_mismatches_are_named(tmp_path):
    path = tmp_path / "me.yaml"
    path.write_text("kind: multieval\nsplit:\n  partitions: 3\n")
    config = load_config(path, schema=None)
    assert config["kind"] == "multieval" and config["split"]["partitions"] == 3
    assert load_config(CONF / "example.yaml", schema=None)["kind"] == "gru4rec"  # no kind: the README schema
    with pytest.raises(ConfigError, match="needs a kind: gru4rec config, the file says kind: multieval"):
        load_config(path)
    path.write_text("kind: multieva\n")
    with pytest.raises(ConfigError, match="kind: 'multieva' is unknown; did you mean 'multieval'"):
        load_config(path, schema=None)


def test_input_paths_in_a_config_file_are_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    folder.mkdir()
    config = folder / "rl.yaml"
    config.write_text(
        "kind: rl\ndata:\n  ratings: ../data/ml\n  items: main.recs.items\n"
        "embeddings:\n  path: dbfs:/Volumes/emb.npz\n"
    )
    monkeypatch.chdir(tmp_path / "conf")
    loaded = load_config(config, schema=None)
    assert loaded["data"]["ratings"] == str(tmp_path / "data" / "ml")
    assert loaded["data"]["items"] == "main.recs.items"  # a table name stays as written
    assert loaded["embeddings"]["path"] == "dbfs:/Volumes/emb.npz"  # a URI stays as written
    overridden = load_config(config, ["data.ratings=here/ml"], schema=None)
    assert overridden["data"]["ratings"] == "here/ml"  # --set values are the caller's, not the file's

    multieval = load_config(CONF / "multieval-ml-latest-small.yaml", schema="multieval")
    assert Path(multieval["data"]["ratings"]) == CONF.parents[1] / "shared" / "data" / "ml-latest-small"
    assert multieval["evaluation"]["path"] is None  # runs go to the work dir, not beside the config


# ---- schemas derived from the components' parameter declarations --------------------------------------


def _assignment(section: str, name: str, value) -> str:
    return f"{section}.{name}={json.dumps(value)}"  # JSON is YAML, as --set parses it


def test_every_gru4rec_parameter_is_settable_from_yaml_with_its_default():
    from spark_recs.models.gru4rec import GRU4Rec

    declared = declarations(GRU4Rec)
    assert list(declared) == list(inspect.signature(GRU4Rec).parameters) and len(declared) == 28
    for name, p in declared.items():
        config = load_config(CONF / "example.yaml", [_assignment("model", name, p.default)])
        assert config["model"][name] == p.default, name
    model = GRU4Rec(**load_config(CONF / "example.yaml")["model"])
    assert model.get_params() == load_config(CONF / "example.yaml")["model"]


@pytest.mark.parametrize(
    "override, value",
    [
        ("model.clipnorm=null", None),
        ("model.checkpoint_dir=null", None),
        ("model.clipnorm=5", 5),
        ("model.checkpoint_dir=ckpt", "ckpt"),
        ("model.embedding=layersize", "layersize"),
        ("model.n_epochs=0", 0),
        ("model.optimization_algorithm=sgd", "sgd"),
        ("model.stopping_criterion=mrr", "mrr"),
        ("model.predict_topK=5", 5),
    ],
)
def test_parameters_the_yaml_schema_refused_or_lacked_are_accepted(override, value):
    config = load_config(None, [override])
    key = override.split("=")[0].split(".")[1]
    assert config["model"][key] == value


@pytest.mark.parametrize(
    "name, value",
    [
        ("momentum", 1.0),
        ("momentum", 0.99),
        ("sample_alpha", 1.5),
        ("sample_alpha", 1.0),
        ("n_epochs", 0),
        ("n_epochs", -1),
        ("learning_rate", 0.0),
        ("embedding", "layersize"),
        ("embedding", "big"),
        ("embedding", 8),
        ("clipnorm", 0),
        ("clipnorm", None),
        ("validation_sample_size", 0),
        ("min_improvement", -0.1),
        ("loss", "top1-max"),
    ],
)
def test_the_yaml_schema_and_the_constructor_agree(name, value):
    from spark_recs.models.gru4rec import GRU4Rec

    def accepted(make) -> bool:
        try:
            make()
        except ValueError:
            return False
        return True

    by_yaml = accepted(lambda: load_config(None, [_assignment("model", name, value)]))
    by_constructor = accepted(lambda: GRU4Rec(**{name: value}))
    assert by_yaml == by_constructor, (name, value, by_yaml)


def test_the_example_config_is_the_readme_schema_and_keeps_its_values():
    import yaml

    given = yaml.safe_load((CONF / "example.yaml").read_text())
    assert list(given) == ["model", "data", "data_split", "training", "evaluation", "paths"]
    loaded = load_config(CONF / "example.yaml")
    assert all(loaded[section] | values == loaded[section] for section, values in given.items())


def test_demo_and_rl_sections_are_the_declared_parameters():
    from spark_recs.rl.algos import BCQ, DDPG, TD3, BCQNetworkParams, Reinforce
    from spark_recs.tasks.demo import DemoConfig

    demo = defaults("demo")
    fields = DemoConfig()
    assert demo["data"]["n_events"] == fields.n_events and demo["evaluation"]["cutoff"] == fields.cutoffs
    assert demo["mlflow"]["experiment"] == fields.experiment and demo["paths"]["output"] is fields.output
    assert sum(map(len, demo.values())) == len(declarations(DemoConfig))
    rl = defaults("rl")
    for section, algo in [("ddpg", DDPG), ("td3", TD3), ("reinforce", Reinforce)]:
        assert rl[section] == {name: p.default for name, p in declarations(algo).items()}
    assert set(rl["bcq"]) == set(declarations(BCQ)) | set(declarations(BCQNetworkParams))
    with pytest.raises(ConfigError, match=r"^td3.policy_update = 0 is out of range \[1, inf\)$"):
        load_config(None, ["td3.policy_update=0"], schema="rl")
