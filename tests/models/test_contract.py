"""Every model class runs the shared contract (tests/models/contract.py); a new model adds its case here."""

import numpy as np
import torch
from contract import ITEMS, ModelContract, SessionModelContract, UserModelContract

from spark_recs.models import Bias, BiasedMF, GRU4Rec, ImplicitMF, ItemCoOccurrence, ItemKNN, Popular
from spark_recs.models.base import BUILTIN_KINDS, model_kind
from spark_recs.rl import Actor, ActorRecommender, ItemEmbeddings


class TestPopular(UserModelContract):
    model_class = Popular

    def unknown_user_scores(self, model):
        return model.counts.numpy()


class TestBias(UserModelContract):
    model_class, params = Bias, dict(damping=(2.0, 1.0))

    def unknown_user_scores(self, model):
        return (model.mean + model.item_offsets).numpy()

    def unknown_item_predictions(self, model, users):
        return (model.mean + model.user_offsets[users]).numpy()


class TestBiasedMF(UserModelContract):
    model_class = BiasedMF
    params = dict(features=3, iterations=2, reg=(0.05, 0.2), damping=(3.0, 4.0), seed=7)

    def unknown_user_scores(self, model):
        return (model.global_bias + model.item_bias).numpy()

    def unknown_item_predictions(self, model, users):
        return (model.global_bias + model.user_bias[users]).numpy()


class TestImplicitMF(UserModelContract):
    model_class = ImplicitMF
    params = dict(features=3, iterations=2, reg=(0.1, 0.3), weight=20.0, use_ratings=True, seed=5)


class TestItemKNN(UserModelContract):
    model_class, params = ItemKNN, dict(nnbrs=3, feedback="implicit", save_nbrs=6)


class TestActorRecommender(UserModelContract):
    """A DDPG/TD3 actor over 2-d item embeddings, states the last two ratings of each user."""

    model_class = ActorRecommender
    params = dict(frame_size=2, scoring="cosine", rating_center=3.0)

    def fit(self, model, data):
        embeddings = ItemEmbeddings(ITEMS, [[np.cos(k), np.sin(k)] for k in range(len(ITEMS))])
        torch.manual_seed(3)
        actor = Actor(model.frame_size * (embeddings.dim + 1), embeddings.dim, 8)
        params = {k: v for k, v in model.get_params().items() if k != "policy"}
        return ActorRecommender.from_policy({"actor": actor}, embeddings, data, **params)


class TestItemCoOccurrence(SessionModelContract):
    model_class = ItemCoOccurrence

    def fit(self, model, data):
        return model.fit(data["SessionId"].to_numpy(), data["ItemId"].to_numpy(), n_items=len(ITEMS))


class TestGRU4Rec(SessionModelContract):
    @staticmethod
    def raw(item):
        return f"item-{item}"

    model_class = GRU4Rec
    params = dict(
        layers=[8], batch_size=4, n_sample=4, n_epochs=2, embedding=4, constrained_embedding=False, seed=3
    )

    def fit(self, model, data):
        return model.fit(data)


def _cases(cls: type) -> set[type]:
    return {sub for child in cls.__subclasses__() for sub in {child, *_cases(child)}}


def test_every_built_in_model_runs_the_contract():
    cases = {case for case in _cases(ModelContract) if case.__name__.startswith("Test")}
    covered = {model_kind(case.model_class) for case in cases}
    # RatingPolicy (the Gym agent's) predicts ratings of whole feature rows: neither a user nor a session model.
    assert covered == BUILTIN_KINDS - {"spark_recs.rl.gym_agent:RatingPolicy"}
