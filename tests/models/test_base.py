"""The model contract: one saved-file format without pickle, params, vocabularies, clear errors."""

import importlib
import inspect
import io
import json
import pickle
import pkgutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import spark_recs
from spark_recs.core.params import declarations
from spark_recs.models import Bias, BiasedMF, ImplicitMF, ItemKNN
from spark_recs.models.base import (
    BUILTIN_KINDS,
    MODEL_FORMAT,
    Model,
    Payload,
    model_class,
    model_kind,
    write_file,
)
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.popular import Popular
from spark_recs.models.vocabulary import Vocabulary

RATINGS = pd.DataFrame({"user": [7, 7, 3, 3, 3, 9], "item": [30, 10, 30, 20, 10, 30]})


def test_popular_counts_each_items_interactions():
    model = Popular().fit(RATINGS)
    assert model.item_vocab.ids.tolist() == [10, 20, 30]  # sorted: index order is id order
    assert model.user_vocab.ids.tolist() == [3, 7, 9]
    assert model.counts.tolist() == [2.0, 1.0, 3.0]


def test_rated_mask_marks_each_users_training_items():
    model = Popular().fit(RATINGS)
    users = model.user_vocab.indices([7, 3, 9, 12345])
    assert users.tolist() == [1, 0, 2, -1]
    assert model.rated_mask(users).tolist() == [
        [True, False, True],
        [True, True, True],
        [False, False, True],
        [False, False, False],
    ]


def test_in_process_recommend_excludes_rated_items_and_breaks_ties_by_id():
    model = Popular().fit(RATINGS)
    assert model.recommend(9, n=5).to_dict("list") == {"item": [10, 20], "score": [2.0, 1.0]}
    assert model.recommend(3).empty  # rated everything
    assert model.recommend("stranger", n=2)["item"].tolist() == [30, 10]
    # Explicit candidates replace the default exclusion; unknown candidate ids are ignored.
    assert model.recommend(3, candidates=[20, 30, 99])["item"].tolist() == [30, 20]
    tied = Popular().fit(pd.DataFrame({"user": [1, 1, 2, 2], "item": ["b", "c", "a", "d"]}))
    assert tied.recommend("x", n=3)["item"].tolist() == ["a", "b", "c"]


def _model_file(kind: str, state: dict) -> bytes:
    buffer = io.BytesIO()
    write_file({"format": MODEL_FORMAT, "kind": kind, "config": "{}", "state": state}, buffer)
    return buffer.getvalue()


def test_load_refuses_anything_but_model_classes(tmp_path):
    state = Popular().fit(RATINGS).state()
    for kind in (
        "os:system",
        "spark_recs.runtime:get_spark",
        "builtins:dict",
        "spark_recs.models.base:Payload",
    ):
        with pytest.raises(ValueError, match="import the module that defines it before loading"):
            Payload(_model_file(kind, state)).restore()
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, buffer)
    with pytest.raises(ValueError, match="is not a spark_recs model file .*: it has no 'spark_recs.model/1'"):
        Payload(buffer.getvalue()).restore()
    Popular().fit(RATINGS).save(tmp_path / "pop.pt")
    with pytest.raises(ValueError, match="holds a Popular, not a GRU4Rec"):
        GRU4Rec.load(tmp_path / "pop.pt")


def test_a_files_kind_imports_nothing_but_built_in_models(tmp_path, monkeypatch):
    # A module on sys.path with a visible side effect at import: a file naming it must not run it.
    marker = tmp_path / "imported.txt"
    (tmp_path / "side_effect_models.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from spark_recs.models.popular import Popular\n\nclass Sneaky(Popular):\n    pass\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    path = tmp_path / "sneaky.pt"
    path.write_bytes(_model_file("side_effect_models:Sneaky", Popular().fit(RATINGS).state()))
    with pytest.raises(ValueError) as refused:
        Model.load(path)
    assert str(refused.value) == (
        f"{path}: model kind 'side_effect_models:Sneaky' is neither a built-in model nor a Model subclass "
        "defined in this process: import the module that defines it before loading"
    )
    assert "side_effect_models" not in sys.modules and not marker.exists()
    # Once the user's own code has imported the class, its files load.
    try:
        from side_effect_models import Sneaky

        loaded = Model.load(path)
        assert type(loaded) is Sneaky and loaded.counts.tolist() == [2.0, 1.0, 3.0]
    finally:
        sys.modules.pop("side_effect_models", None)


def test_every_built_in_model_class_is_known_by_its_kind():
    for info in pkgutil.walk_packages(spark_recs.__path__, "spark_recs."):
        if info.name != "spark_recs.mlflow_pyfunc":  # importing it sets MLflow's model-from-code
            importlib.import_module(info.name)
    abstract = {"spark_recs.models.base:Recommender", "spark_recs.models.mf:MatrixFactorization"}
    defined = {model_kind(cls) for cls in _subclasses(Model) if cls.__module__.startswith("spark_recs.")}
    assert defined - abstract == BUILTIN_KINDS
    for kind in BUILTIN_KINDS:
        assert model_kind(model_class(kind)) == kind


def _subclasses(cls: type) -> set[type]:
    return {sub for child in cls.__subclasses__() for sub in {child, *_subclasses(child)}}


def test_refused_files_give_one_line_naming_the_file_and_never_suggest_weights_only_false(tmp_path, recwarn):
    class Opaque:
        def __reduce__(self):
            return (print, ("this must never run",))

    saved = Popular().fit(RATINGS).save(tmp_path / "pop.pt").read_bytes()
    cases = {
        "pickle.pkl": pickle.dumps({"format": MODEL_FORMAT, "kind": "x", "config": "{}", "state": {}}),
        "objects.pt": _torch_bytes({"format": MODEL_FORMAT, "kind": Opaque()}),
        "text.pt": b"user,item\n1,2\n",
        "truncated.pt": saved[: len(saved) // 2],
        "empty.pt": b"",
    }
    reasons = {
        "pickle.pkl": "holds Python objects other than tensors, strings and numbers",
        "objects.pt": "holds Python objects other than tensors, strings and numbers",
        "text.pt": "is truncated or not a torch.save file",
        "truncated.pt": "is truncated or not a torch.save file",
        "empty.pt": "is truncated or not a torch.save file",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as refused:
            Model.load(path)
        message = str(refused.value)
        assert message.startswith(f"{path} is not a spark_recs model file (written by Model.save): "), name
        assert reasons[name] in message and "\n" not in message and "weights_only" not in message, name
        assert refused.value.__cause__ is None and refused.value.__context__ is None, name  # torch's hidden
    assert not [w for w in recwarn if "weights_only" in str(w.message)]


def _torch_bytes(content) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def test_fit_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"needs column\(s\) \['user'\]"):
        Popular().fit(RATINGS.rename(columns={"user": "userId"}))
    with pytest.raises(ValueError, match="'item' has 1 missing values"):
        Popular().fit(pd.DataFrame({"user": [1, 2], "item": [1.0, np.nan]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        Popular().payload()


def test_vocabulary_keeps_integer_and_string_ids_without_pickle():
    for ids in ([5, 1, 3], ["b", "a"]):
        vocab = Vocabulary.fit(ids)
        restored = Vocabulary.from_state(vocab.state("item"), "item")
        assert restored.ids.tolist() == sorted(ids)
        assert restored.indices([ids[0], "nope"]).tolist() == [len(ids) - 1, -1]
    assert Vocabulary.fit([5, 1]).spark_type == "long" and Vocabulary.fit(["a"]).spark_type == "string"
    with pytest.raises(ValueError, match="unique"):
        Vocabulary([1, 1])


# ---- parameters declared once ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Bias, BiasedMF, ImplicitMF, ItemKNN, GRU4Rec])
def test_the_declaration_lists_exactly_the_constructors_parameters_and_defaults(cls):
    declared = {name: p.default for name, p in declarations(cls).items()}
    constructor = inspect.signature(cls).parameters
    assert {name: p.default for name, p in constructor.items()} == declared
    assert list(cls().get_params()) == list(declared)


def test_the_baselines_take_lenskits_positional_parameters_in_declaration_order():
    assert BiasedMF(20).features == 20 and ImplicitMF(8, 3).iterations == 3 and ItemKNN(30).nnbrs == 30
    assert Bias(True, False, 5.0).get_params() == {"items": True, "users": False, "damping": 5.0}
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(GRU4Rec).parameters.values()
    )
    with pytest.raises(TypeError, match="twice"):
        BiasedMF(20, features=30)
    with pytest.raises(TypeError, match="at most 3 positional"):
        Bias(True, True, 0.0, 1)


def test_declared_params_keep_numpy_scalars_as_numbers_and_pairs_as_tuples():
    model = BiasedMF(
        features=np.int64(3), reg=[np.float64(0.5), 1], damping=(np.int32(2), 3.0), bias=np.bool_(0)
    )
    params = model.get_params()
    assert params == {
        "features": 3,
        "iterations": 20,
        "reg": (0.5, 1),
        "damping": (2, 3.0),
        "bias": False,
        "seed": 42,
    }
    assert type(params["features"]) is int and type(params["damping"][0]) is int and params["bias"] is False
    assert BiasedMF(**json.loads(json.dumps(params))).get_params() == params  # the saved config rebuilds it
