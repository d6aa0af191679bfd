"""Bias: the user-item bias rating predictor (LensKit 0.14's ``basic.Bias``).

``s(u, i) = mu + b_i + b_u`` with ``mu`` the global mean rating,
``b_i = sum_{u in R_i} (r_ui - mu) / (|R_i| + damping_i)`` and
``b_u = sum_{i in R_u} (r_ui - mu - b_i) / (|R_u| + damping_u)``. A user or item the model does not
know has bias 0. The offsets are computed and kept in float64 (they are one number per user and per
item), so :meth:`Bias.predict_pairs` reproduces the formulas to rounding; ``score_users`` returns float32
like every :class:`~spark_recs.models.base.Recommender`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.params import NUMBER, Rule, help_text, param, signature
from .base import Recommender

log = logging.getLogger(__name__)

#: A finite number >= 0.
FINITE_NON_NEGATIVE = Rule(NUMBER, 0, math.inf, high_open=True)
#: A finite number >= 0 for users and items alike, or a ``(user, item)`` pair of them.
USER_ITEM_PAIR = Rule(NUMBER, 0, math.inf, high_open=True, items=FINITE_NON_NEGATIVE, length=2)


def user_item_pair(value) -> tuple[float, float]:
    """``(user_value, item_value)`` of a :data:`USER_ITEM_PAIR` parameter (a number serves both)."""
    return (float(value[0]), float(value[1])) if isinstance(value, (tuple, list)) else (float(value),) * 2


@dataclass(frozen=True)
class BiasParams:
    """:class:`Bias`'s parameters, LensKit's defaults."""

    items: bool = param(True, Rule(bool), "fit the item offsets b_i")
    users: bool = param(True, Rule(bool), "fit the user offsets b_u")
    damping: float | tuple[float, float] = param(
        0.0, USER_ITEM_PAIR, "default (mean) ratings assumed a priori per user and per item"
    )


def bias_offsets(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    damping=0.0,
    *,
    fit_items: bool = True,
    fit_users: bool = True,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mu, user_offsets, item_offsets)`` in float64 for dense user/item indices (one entry per rating).

    ``damping``: a number or a ``(user, item)`` pair. Disabled offsets are all zeros. With damping 0 the
    offsets are plain means of the residuals.
    """
    user_damping, item_damping = user_item_pair(damping)
    ratings = np.asarray(ratings, dtype=np.float64)
    mu = float(ratings.mean())
    residual = ratings - mu
    item_offsets = np.zeros(n_items)
    if fit_items:
        counts = np.bincount(items, minlength=n_items)
        item_offsets = np.bincount(items, residual, minlength=n_items) / (counts + item_damping)
        residual = residual - item_offsets[items]
    user_offsets = np.zeros(n_users)
    if fit_users:
        counts = np.bincount(users, minlength=n_users)
        user_offsets = np.bincount(users, residual, minlength=n_users) / (counts + user_damping)
    return mu, user_offsets, item_offsets


class Bias(Recommender):
    """User-item bias predictor: ``mu + b_i + b_u`` (LensKit's ``Bias(items, users, damping)``), with the
    parameters of :class:`BiasParams` (``damping``: a number, or a ``(user, item)`` pair).

    ``fit(ratings)`` needs a ``rating`` column. Unknown users score ``mu + b_i``; unknown items
    ``mu + b_u``.
    """

    Params = BiasParams
    predicts_ratings = True

    def __init__(self, *args, **params) -> None:
        self._init_params(args, params)
        self.mean: torch.Tensor | None = None
        self.user_offsets: torch.Tensor | None = None
        self.item_offsets: torch.Tensor | None = None

    __init__.__signature__ = signature(BiasParams, positional=True)
    __init__.__doc__ = help_text(BiasParams)

    def fit(self, ratings) -> Bias:
        self.set_params()  # also checks attributes assigned directly
        users, items, values = self._index_ratings(ratings, need_rating=True)
        mu, user_offsets, item_offsets = bias_offsets(
            users,
            items,
            values,
            len(self.user_vocab),
            self.n_items,
            self.damping,
            fit_items=self.items,
            fit_users=self.users,
        )
        self.mean = torch.tensor(mu, dtype=torch.float64)
        self.user_offsets = torch.from_numpy(user_offsets)
        self.item_offsets = torch.from_numpy(item_offsets)
        log.info(
            "Bias: mean %.4f over %d ratings, offsets for %d users and %d items",
            mu,
            len(values),
            len(self.user_vocab),
            self.n_items,
        )
        return self

    def _tensors(self) -> dict:
        return {"mean": self.mean, "user_offsets": self.user_offsets, "item_offsets": self.item_offsets}

    def _load_tensors(self, state: dict) -> None:
        self.mean = state["mean"]
        self.user_offsets = state["user_offsets"]
        self.item_offsets = state["item_offsets"]

    def _user_offsets(self, users: np.ndarray) -> torch.Tensor:
        """float64 ``b_u`` per user index (0 for -1)."""
        users = torch.from_numpy(np.asarray(users, dtype=np.int64))
        return torch.where(users >= 0, self.user_offsets[users.clamp(min=0)], 0.0)

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        base = (self.mean + self.item_offsets).unsqueeze(0)
        return (base + self._user_offsets(users).unsqueeze(1)).float()

    def predict_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        items = torch.from_numpy(np.asarray(items, dtype=np.int64))
        item_part = torch.where(items >= 0, self.item_offsets[items.clamp(min=0)], 0.0)
        return (self.mean + item_part + self._user_offsets(users)).numpy()
