"""Reinforcement-learning recommenders: item embeddings, recnn-style environments, actor/critic networks
and their off-policy updates, a trained policy as a recommender, and (``spark_recs.rl.gym``) the
MovieLens rating-prediction Gymnasium environment."""

from .algos import (
    BCQ,
    DDPG,
    TD3,
    Algo,
    MLflowWriter,
    Reinforce,
    bcq_update,
    ddpg_update,
    reinforce_update,
    soft_update,
    td3_update,
)
from .embeddings import ItemEmbeddings
from .env import FrameEnv, SeqEnv, user_histories
from .nets import Actor, Critic, DiscreteActor, bcqGenerator, bcqPerturbator
from .recommender import ActorRecommender

__all__ = [
    "BCQ",
    "DDPG",
    "TD3",
    "Actor",
    "ActorRecommender",
    "Algo",
    "Critic",
    "DiscreteActor",
    "FrameEnv",
    "ItemEmbeddings",
    "MLflowWriter",
    "Reinforce",
    "SeqEnv",
    "bcqGenerator",
    "bcqPerturbator",
    "bcq_update",
    "ddpg_update",
    "reinforce_update",
    "soft_update",
    "td3_update",
    "user_histories",
]
