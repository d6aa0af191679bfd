"""ActorRecommender: a trained policy scored by hand, each policy kind saved and loaded.

The contract every user model meets (parameters, the saved file, unknown ids, empty input, batch over
Spark = in-process) runs for ActorRecommender in tests/models/test_contract.py.
"""

import io

import numpy as np
import pandas as pd
import pytest
import torch
from test_env import EMBEDDINGS
from test_env import RATINGS as ENV_RATINGS

from spark_recs.models.base import Model
from spark_recs.rl.nets import Actor, DiscreteActor, bcqGenerator, bcqPerturbator
from spark_recs.rl.recommender import ActorRecommender

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The environment tests' hand-built table (items 10..50 are rows 0..4) and ratings, plus a rating of an
# item without an embedding: it is in no frame and never recommended.
VECTORS = {10: [1, 0], 20: [0, 1], 30: [1, 1], 40: [2, -1], 50: [0, 3]}
RATINGS = pd.concat(
    [ENV_RATINGS, pd.DataFrame([(3, 99, 5.0, 60)], columns=ENV_RATINGS.columns)], ignore_index=True
)


def _nets(policy: str, state_dim: int = 6, dim: int = 2) -> dict:
    torch.manual_seed(3)
    if policy == "actor":
        return {"actor": Actor(state_dim, dim, 8)}
    if policy == "discrete":
        return {"discrete": DiscreteActor(state_dim, 5, 8, init_w=0.5)}
    return {"generator": bcqGenerator(state_dim, dim, 3), "perturbator": bcqPerturbator(state_dim, dim, 8)}


def test_scores_are_the_action_against_every_embedding():
    actor = _nets("actor")["actor"]
    model = ActorRecommender.from_policy({"actor": actor}, EMBEDDINGS, RATINGS, frame_size=2)
    # User 3 by time: 20 (0.5), 30 (4.5), 99 (no embedding), 10 (3.5): last frame 30, 10 rated 4, 2.
    state = torch.tensor([[*VECTORS[30], *VECTORS[10], 2 * (4.5 - 2.5), 2 * (3.5 - 2.5)]])
    with torch.no_grad():
        action = actor.eval()(state)[0]
    expected = {item: float(action @ torch.tensor(v, dtype=torch.float32)) for item, v in VECTORS.items()}
    user = model.user_vocab.indices([3])
    scores = model.score_users(user)[0]
    got = dict(zip(model.item_vocab.ids.tolist(), scores.tolist()))
    assert got == pytest.approx(expected, rel=1e-6)
    # Items 10, 20 and 30 are rated: only 40 and 50 are candidates, best first.
    recs = model.recommend(3, 5)
    assert sorted(recs["item"]) == [40, 50]
    assert recs["item"].tolist() == sorted([40, 50], key=lambda i: -expected[i])


def test_users_with_fewer_ratings_than_a_frame_get_no_scores():
    model = ActorRecommender.from_policy(_nets("actor", state_dim=9), EMBEDDINGS, RATINGS, frame_size=3)
    scores = model.score_users(model.user_vocab.indices([9, 3]))
    assert torch.isnan(scores[0]).all() and torch.isfinite(scores[1]).all()
    assert model.recommend(9, 5).empty


def test_cosine_scoring_normalises_action_and_embeddings():
    nets = _nets("actor")
    dot = ActorRecommender.from_policy(nets, EMBEDDINGS, RATINGS, frame_size=2)
    cosine = ActorRecommender.from_policy(nets, EMBEDDINGS, RATINGS, frame_size=2, scoring="cosine")
    user = dot.user_vocab.indices([3])
    norms = EMBEDDINGS.vectors.norm(dim=1)
    ratio = dot.score_users(user)[0] / (cosine.score_users(user)[0] * norms)
    np.testing.assert_allclose(ratio.numpy(), ratio[0].item(), rtol=1e-5)  # |action| for every item


# The actor policy's round trip is the contract's.
@pytest.mark.parametrize("policy", ["bcq", "discrete"])
def test_every_policy_survives_save_and_load(policy):
    model = ActorRecommender.from_policy(_nets(policy), EMBEDDINGS, RATINGS, frame_size=2)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = Model.load(buffer)
    assert isinstance(loaded, ActorRecommender) and loaded.policy == policy
    users = model.user_vocab.indices([3, 7, 9])
    torch.testing.assert_close(loaded.score_users(users), model.score_users(users), equal_nan=True)
    assert torch.isfinite(model.score_users(users)).all()


def test_policy_and_frame_size_must_match():
    with pytest.raises(ValueError, match="takes 6 state values but frame_size 3 with 2-d embeddings gives 9"):
        ActorRecommender.from_policy(_nets("actor"), EMBEDDINGS, RATINGS, frame_size=3)
