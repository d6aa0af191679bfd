"""Popular: scores every item by its number of training interactions (LensKit's ``Popular``)."""

from __future__ import annotations

import numpy as np
import torch

from .base import Recommender


class Popular(Recommender):
    """Most-popular baseline: the same scores (training counts) for every user and every session.

    ``fit(ratings)`` takes a frame with ``user`` and ``item`` columns (one row per interaction; for
    session data the session id can stand in for the user). Unknown users get the same list, minus
    nothing (they have no training items to exclude).
    """

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None

    def fit(self, ratings) -> Popular:
        _, items, _ = self._index_ratings(ratings)
        self.counts = torch.from_numpy(np.bincount(items, minlength=self.n_items).astype(np.float32))
        return self

    def _tensors(self) -> dict:
        return {"counts": self.counts}

    def _load_tensors(self, state: dict) -> None:
        self.counts = state["counts"]

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        return self.counts.repeat(len(users), 1)

    def score_sessions(self, sessions: list[np.ndarray], every_prefix: bool = False) -> torch.Tensor:
        """Scores per session (or per prefix of each session): the training counts."""
        rows = sum(len(s) for s in sessions) if every_prefix else len(sessions)
        return self.counts.expand(rows, -1)
