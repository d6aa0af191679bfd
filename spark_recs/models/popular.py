"""Popular: scores every item by its number of training interactions (LensKit's ``Popular``)."""

from __future__ import annotations

import numpy as np
import torch

from spark_recs.models.base import Model, check_items


class Popular(Model):
    """Most-popular baseline; the same scores for every user and session.

    ``fit(items, n_items)`` takes the item index of every training interaction.
    """

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None

    def fit(self, items: np.ndarray, n_items: int | None = None) -> Popular:
        items = check_items(items)
        n_items = int(n_items if n_items is not None else items.max() + 1)
        self.counts = torch.from_numpy(np.bincount(items, minlength=n_items).astype(np.float32))
        return self

    @property
    def n_items(self) -> int:
        return int(self.counts.numel())

    def state(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    @classmethod
    def from_state(cls, config: dict, state: dict[str, torch.Tensor]) -> Popular:
        model = cls()
        model.counts = state["counts"]
        return model

    def score_sessions(self, sessions: list[np.ndarray], every_prefix: bool = False) -> torch.Tensor:
        """Scores per session (or per prefix of each session): the training counts."""
        rows = sum(len(s) for s in sessions) if every_prefix else len(sessions)
        return self.counts.expand(rows, -1)
