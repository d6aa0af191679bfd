"""The model contract: one saved-file format without pickle, params, vocabularies, clear errors."""

import io

import numpy as np
import pandas as pd
import pytest
import torch

from spark_recs.models.base import MODEL_FORMAT, Model, Payload, write_file
from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.popular import Popular
from spark_recs.models.vocabulary import Vocabulary

RATINGS = pd.DataFrame({"user": [7, 7, 3, 3, 3, 9], "item": [30, 10, 30, 20, 10, 30]})


def test_popular_counts_and_round_trips(tmp_path):
    model = Popular().fit(RATINGS)
    assert model.item_vocab.ids.tolist() == [10, 20, 30]  # sorted: index order is id order
    assert model.counts.tolist() == [2.0, 1.0, 3.0]
    assert torch.equal(model.payload().restore().counts, model.counts)
    loaded = Model.load(model.save(tmp_path / "pop.pt"))
    assert isinstance(loaded, Popular) and torch.equal(loaded.counts, model.counts)
    assert loaded.user_vocab.ids.tolist() == [3, 7, 9]
    # The file is plain tensors and strings: it loads with weights_only.
    content = torch.load(tmp_path / "pop.pt", weights_only=True)
    assert content["format"] == MODEL_FORMAT and content["kind"] == "spark_recs.models.popular:Popular"


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


def test_load_refuses_anything_but_model_classes(tmp_path):
    state = Popular().fit(RATINGS).state()
    for kind in ("os:system", "spark_recs.runtime:get_spark", "builtins:dict"):
        buffer = io.BytesIO()
        write_file({"format": MODEL_FORMAT, "kind": kind, "config": "{}", "state": state}, buffer)
        with pytest.raises(ValueError, match="does not name a spark_recs Model subclass"):
            Payload(buffer.getvalue()).restore()
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, buffer)
    with pytest.raises(ValueError, match="not a saved spark_recs model"):
        Payload(buffer.getvalue()).restore()
    Popular().fit(RATINGS).save(tmp_path / "pop.pt")
    with pytest.raises(ValueError, match="holds a Popular, not a GRU4Rec"):
        GRU4Rec.load(tmp_path / "pop.pt")


def test_fit_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty"):
        Popular().fit(RATINGS.iloc[:0])
    with pytest.raises(ValueError, match=r"needs column\(s\) \['user'\]"):
        Popular().fit(RATINGS.rename(columns={"user": "userId"}))
    with pytest.raises(ValueError, match="'item' has 1 missing values"):
        Popular().fit(pd.DataFrame({"user": [1, 2], "item": [1.0, np.nan]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        Popular().payload()


def test_set_params_names_unknown_parameter():
    with pytest.raises(ValueError, match="no parameter 'alpha'"):
        Popular().set_params(alpha=1)


def test_vocabulary_keeps_integer_and_string_ids_without_pickle():
    for ids in ([5, 1, 3], ["b", "a"]):
        vocab = Vocabulary.fit(ids)
        restored = Vocabulary.from_state(vocab.state("item"), "item")
        assert restored.ids.tolist() == sorted(ids)
        assert restored.indices([ids[0], "nope"]).tolist() == [len(ids) - 1, -1]
    assert Vocabulary.fit([5, 1]).spark_type == "long" and Vocabulary.fit(["a"]).spark_type == "string"
    with pytest.raises(ValueError, match="unique"):
        Vocabulary([1, 1])
