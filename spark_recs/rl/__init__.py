"""Reinforcement-learning recommenders: item embeddings, recnn-style environments, actor/critic networks
and their off-policy updates, and the MovieLens rating-prediction Gymnasium environment."""
