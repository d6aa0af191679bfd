"""What models expose to other layers instead of being reached into: item vectors and a scoring mode."""

import pandas as pd
import pytest
import torch

from spark_recs.models.gru4rec import GRU4Rec
from spark_recs.models.mf import BiasedMF, ImplicitMF

RATINGS = pd.DataFrame(
    {"user": [1, 1, 2, 2, 3, 3, 4], "item": [30, 10, 10, 20, 30, 20, 10], "rating": [5.0, 3, 4, 2, 1, 4, 5]}
)
SESSIONS = pd.DataFrame({"SessionId": [1, 1, 2, 2, 2], "ItemId": [7, 3, 3, 9, 7], "Time": [1, 2, 3, 4, 5]})


@pytest.mark.parametrize("model_class", [BiasedMF, ImplicitMF])
def test_mf_item_embeddings_are_a_copy_of_the_item_factors(model_class):
    model = model_class(features=3, iterations=2, seed=1).fit(RATINGS)
    vectors = model.item_embeddings()
    assert vectors.dtype == torch.float32 and vectors.shape == (3, 3)
    assert model.item_vocab.ids.tolist() == [10, 20, 30] and torch.equal(vectors, model.item_factors)
    vectors.zero_()
    assert model.item_factors.abs().sum() > 0
    with pytest.raises(RuntimeError, match="not fitted yet"):
        model_class().item_embeddings()


@pytest.mark.parametrize("inputs", [{}, {"constrained_embedding": False, "embedding": 5}])
def test_gru4rec_item_embeddings_are_the_input_item_vectors(inputs):
    model = GRU4Rec(layers=[6], n_sample=0, n_epochs=1, batch_size=2, seed=2, **inputs).fit(SESSIONS)
    vectors = model.item_embeddings()
    expected = model.net.E if inputs else model.net.Wy  # separate embedding, else the shared output weights
    assert vectors.dtype == torch.float32 and torch.equal(vectors, expected.detach())
    assert vectors.shape[0] == len(model.item_ids) == 3  # row i is item_ids[i]
    vectors.zero_()
    assert expected.abs().sum() > 0
    with pytest.raises(RuntimeError, match="not trained yet"):
        GRU4Rec().item_embeddings()


def test_gru4rec_evaluating_turns_dropout_off_and_restores_the_mode():
    model = GRU4Rec(layers=[6], n_sample=0, n_epochs=1, batch_size=2, dropout_p_hidden=0.5).fit(SESSIONS)
    session = [model.item_indices([7, 3])]
    model.net.train()  # as during fit, when an epoch callback validates
    with model.evaluating() as scoring:
        assert scoring is model and not model.net.training
        first, again = model.score_sessions(session), model.score_sessions(session)
    assert model.net.training and torch.equal(first, again)
    model.net.eval()
    with model.evaluating():
        pass
    assert not model.net.training
