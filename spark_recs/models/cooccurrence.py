"""ItemCoOccurrence: a session baseline scoring the next item by how often it followed the last one."""

from __future__ import annotations

import numpy as np
import torch

from spark_recs.models.base import Model, check_items


class ItemCoOccurrence(Model):
    """Counts of ``a -> b`` transitions (consecutive events of a training session); the score of ``b``
    after a prefix is the count from the prefix's last item. Stored sparse (CSR)."""

    def __init__(self) -> None:
        self.indptr: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def fit(self, sessions: np.ndarray, items: np.ndarray, n_items: int | None = None) -> ItemCoOccurrence:
        """``sessions``/``items``: one entry per event, grouped by session and in time order."""
        items = check_items(items)
        sessions = np.asarray(sessions)
        n_items = int(n_items if n_items is not None else items.max() + 1)
        same = sessions[1:] == sessions[:-1]
        pairs = items[:-1][same] * n_items + items[1:][same]
        keys, counts = np.unique(pairs, return_counts=True)
        src, dst = np.divmod(keys, n_items)
        self.indptr = torch.from_numpy(
            np.r_[0, np.cumsum(np.bincount(src, minlength=n_items))].astype(np.int64)
        )
        self.indices = torch.from_numpy(dst.astype(np.int64))
        self.values = torch.from_numpy(counts.astype(np.float32))
        return self

    @property
    def n_items(self) -> int:
        return int(self.indptr.numel() - 1)

    def state(self) -> dict[str, torch.Tensor]:
        if self.indptr is None:
            raise RuntimeError("this ItemCoOccurrence is not fitted yet: call fit() first")
        return {"indptr": self.indptr, "indices": self.indices, "values": self.values}

    @classmethod
    def from_state(cls, config: dict, state: dict[str, torch.Tensor]) -> ItemCoOccurrence:
        model = cls()
        model.indptr, model.indices, model.values = state["indptr"], state["indices"], state["values"]
        return model

    def score_sessions(self, sessions: list[np.ndarray], every_prefix: bool = False) -> torch.Tensor:
        """Scores after each session's last event (or after every event with ``every_prefix``)."""
        last = np.array([item for s in sessions for item in (s if every_prefix else s[-1:])], dtype=np.int64)
        scores = torch.zeros(len(last), self.n_items)
        for row, item in enumerate(last.tolist()):
            lo, hi = int(self.indptr[item]), int(self.indptr[item + 1])
            scores[row, self.indices[lo:hi]] = self.values[lo:hi]
        return scores
