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
import numbers

import numpy as np
import torch

from .base import Recommender

log = logging.getLogger(__name__)


def damping_pair(damping, name: str = "damping") -> tuple[float, float]:
    """``(user_damping, item_damping)`` from a number or a pair (LensKit's convention), validated."""
    if isinstance(damping, (tuple, list)):
        if len(damping) != 2:
            raise ValueError(
                f"{name} must be a number or a (user_damping, item_damping) pair, got {damping!r}"
            )
        pair = tuple(damping)
    else:
        pair = (damping, damping)
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number or a pair of them, got {damping!r}")
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {damping!r}")
    return float(pair[0]), float(pair[1])


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

    Disabled offsets are all zeros. With damping 0 the offsets are plain means of the residuals.
    """
    user_damping, item_damping = damping_pair(damping)
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
    """User-item bias predictor: ``mu + b_i + b_u`` (LensKit's ``Bias(items, users, damping)``).

    ``items``/``users``: whether to fit item and user offsets. ``damping``: a number, or a
    ``(user_damping, item_damping)`` pair, of default (mean) ratings assumed a priori per user and item.
    ``fit(ratings)`` needs a ``rating`` column. Unknown users score ``mu + b_i``; unknown items
    ``mu + b_u``.
    """

    predicts_ratings = True

    def __init__(self, items: bool = True, users: bool = True, damping=0.0) -> None:
        damping_pair(damping)
        self.items = bool(items)
        self.users = bool(users)
        self.damping = tuple(damping) if isinstance(damping, (tuple, list)) else damping
        self.mean: torch.Tensor | None = None
        self.user_offsets: torch.Tensor | None = None
        self.item_offsets: torch.Tensor | None = None

    def set_params(self, **params) -> Bias:
        if "damping" in params:
            damping_pair(params["damping"])
            params["damping"] = (
                tuple(params["damping"]) if isinstance(params["damping"], list) else params["damping"]
            )
        return super().set_params(**params)

    def fit(self, ratings) -> Bias:
        damping_pair(self.damping)
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
