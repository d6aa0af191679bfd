"""A trained actor as a recommender: a model like any other (batch.recommend, the MLflow registry).

For each user, the state is the user's last frame (recnn's :func:`~spark_recs.rl.env.frame_state` of the
``frame_size`` most recent ratings, rescaled as in training); the policy maps it to an action vector,
scored against every item embedding (inner product or cosine), or straight to item scores (a discrete
policy). The user's rated items (the frame's included) are excluded as for every
:class:`~spark_recs.models.base.Recommender`.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from spark_recs.models.base import Recommender

from .embeddings import ItemEmbeddings
from .env import frame_state, rating_columns, user_histories
from .nets import Actor, DiscreteActor, bcqGenerator, bcqPerturbator

SCORINGS = ("dot", "cosine")
POLICIES = ("actor", "bcq", "discrete")


class ActorRecommender(Recommender):
    """Top-N from a trained policy over item embeddings.

    ``policy``: ``"actor"`` (an :class:`~spark_recs.rl.nets.Actor`, DDPG/TD3: its action is scored against
    the item embeddings by ``scoring``), ``"bcq"`` (BCQ's generator decodes the latent's mode, 0, and the
    perturbator adjusts it: that action is scored the same way) or ``"discrete"`` (a
    :class:`~spark_recs.rl.nets.DiscreteActor` over the embedded items, REINFORCE: its log-probabilities
    are the scores). Build it with :meth:`from_policy`; ``frame_size``, ``rating_center`` and
    ``rating_scale`` must be the training environment's. Users with fewer than ``frame_size`` ratings of
    embedded items (and unknown users) get no scores.
    """

    def __init__(
        self,
        frame_size: int = 10,
        policy: str = "actor",
        scoring: str = "dot",
        rating_center: float = 2.5,
        rating_scale: float = 2.0,
        phi: float = 0.05,
    ) -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.frame_size = frame_size
        self.policy = policy
        self.scoring = scoring
        self.rating_center = rating_center
        self.rating_scale = rating_scale
        self.phi = phi
        self.nets: dict[str, nn.Module] = {}
        self.vectors: torch.Tensor | None = None

    @classmethod
    def from_policy(
        cls, nets: dict[str, nn.Module], embeddings: ItemEmbeddings, ratings, *, columns=None, **params
    ) -> ActorRecommender:
        """The recommender of a trained policy for the users of ``ratings`` (pandas or Spark; ``user, item,
        rating, timestamp`` or as mapped by ``columns``), whose last frames become their states.

        ``nets``: ``{"actor": Actor}``, ``{"generator": bcqGenerator, "perturbator": bcqPerturbator}`` or
        ``{"discrete": DiscreteActor}`` (``policy`` follows from the keys).
        """
        policy = {"actor": "actor", "generator": "bcq", "discrete": "discrete"}[min(nets)]
        if policy == "bcq":
            params.setdefault("phi", nets["perturbator"].phi)
        model = cls(policy=policy, **params)
        cols = rating_columns(columns)
        histories = user_histories(ratings, cols)
        flat = pd.DataFrame({"user": np.repeat(histories.users, histories.lengths), "item": histories.items})
        model._index_ratings(flat, items=embeddings.vocab)
        model.vectors = embeddings.vectors
        # Copies: the callers keep theirs.
        model.nets = {name: copy.deepcopy(net).cpu().eval() for name, net in nets.items()}
        given = next(iter(model.nets.values())).linear1.in_features if policy != "bcq" else None
        expected = model.frame_size * (embeddings.dim + 1)
        if given is not None and given != expected:
            raise ValueError(
                f"the policy takes {given} state values but frame_size {model.frame_size} with "
                f"{embeddings.dim}-d embeddings gives {expected}"
            )
        model._set_frames(histories)
        return model

    def _set_frames(self, histories) -> None:
        """The last ``frame_size`` embedded items and rescaled ratings of each user (-1: no full frame)."""
        size = self.frame_size
        self.frame_items = torch.full((len(self.user_vocab), size), -1, dtype=torch.long)
        self.frame_ratings = torch.zeros(len(self.user_vocab), size)
        items = self.item_vocab.indices(histories.items)
        rows = self.user_vocab.indices(histories.users)
        for k, row in enumerate(rows):
            start, end = histories.offsets[k], histories.offsets[k + 1]
            known = items[start:end] >= 0
            if row >= 0 and known.sum() >= size:
                self.frame_items[row] = torch.from_numpy(items[start:end][known][-size:])
                ratings = histories.ratings[start:end][known][-size:]
                rescaled = self.rating_scale * (ratings - self.rating_center)
                self.frame_ratings[row] = torch.from_numpy(rescaled.astype(np.float32))

    def _tensors(self) -> dict:
        nets = {f"{name}.{k}": v for name, net in self.nets.items() for k, v in net.state_dict().items()}
        return {
            **nets,
            "vectors": self.vectors,
            "frame_items": self.frame_items,
            "frame_ratings": self.frame_ratings,
        }

    def _load_tensors(self, state: dict) -> None:
        self.vectors = state["vectors"]
        self.frame_items, self.frame_ratings = state["frame_items"], state["frame_ratings"]
        n_items, dim = self.vectors.shape
        state_dim = self.frame_size * (dim + 1)

        def hidden(name: str) -> int:
            return state[f"{name}.linear1.weight"].shape[0]

        if self.policy == "actor":
            nets = {"actor": Actor(state_dim, dim, hidden("actor"))}
        elif self.policy == "discrete":
            nets = {"discrete": DiscreteActor(state_dim, n_items, hidden("discrete"))}
        else:
            latent = state["generator.mean.weight"].shape[0]
            nets = {
                "generator": bcqGenerator(state_dim, dim, latent),
                "perturbator": bcqPerturbator(state_dim, dim, hidden("perturbator"), phi=self.phi),
            }
        for name, net in nets.items():
            prefix = f"{name}."
            net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
            net.eval()
        self.nets = nets

    def _policy_output(self, state: torch.Tensor) -> torch.Tensor:
        """Item scores (discrete) or the action vector, for frame states."""
        if self.policy == "discrete":
            return self.nets["discrete"].log_probs(state)
        if self.policy == "bcq":
            z = torch.zeros(len(state), self.nets["generator"].latent_dim)
            return self.nets["perturbator"](state, self.nets["generator"].decode(state, z))
        return self.nets["actor"](state)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        users = torch.as_tensor(np.asarray(users, dtype=np.int64))
        has_frame = torch.zeros(len(users), dtype=torch.bool)
        has_frame[users >= 0] = self.frame_items[users[users >= 0]][:, 0] >= 0
        scores = torch.full((len(users), self.n_items), float("nan"))
        if not has_frame.any():
            return scores
        chosen = users[has_frame]
        state = frame_state(self.vectors, self.frame_items[chosen], self.frame_ratings[chosen])
        with torch.no_grad():
            out = self._policy_output(state)
        if self.policy != "discrete":
            vectors = self.vectors
            if self.scoring == "cosine":
                out, vectors = F.normalize(out, dim=1), F.normalize(vectors, dim=1)
            out = out @ vectors.T
        scores[has_frame] = out
        return scores
