"""Shared negative samples drawn from item popularity ** alpha, pre-drawn in bulk into a cache."""

from __future__ import annotations

import json

import numpy as np
import torch


class NegativeSampler:
    """Serves one row of ``n_sample`` item indices per training step from a pre-drawn cache.

    The cache holds ``cache_size // n_sample`` rows; it is first drawn on construction (before training
    starts, as in the reference) and redrawn when used up. Every uniform number comes from one PCG64
    stream in order, so the samples do not depend on the cache size, and a checkpoint needs only the
    generator state at the start of the current cache and the read position.
    """

    def __init__(self, counts: np.ndarray, alpha: float, n_sample: int, cache_size: int, seed, device="cpu"):
        if n_sample <= 0:
            raise ValueError("n_sample must be positive to sample negatives")
        counts = np.asarray(counts, dtype=np.float64)
        weights = np.where(counts > 0, counts**alpha, 0.0)  # 0 ** 0 would make unseen items drawable
        self.cdf = np.cumsum(weights) / weights.sum()
        self.cdf[-1] = 1.0  # so that no uniform draw falls past the last item
        self.n_sample = n_sample
        self.n_rows = max(1, cache_size // n_sample)
        self.device = torch.device(device)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self._redraw()

    @property
    def probabilities(self) -> np.ndarray:
        """Sampling probability of each item."""
        return np.diff(self.cdf, prepend=0.0)

    def _redraw(self) -> None:
        self.cache_state = self.rng.bit_generator.state
        uniform = self.rng.random(self.n_rows * self.n_sample)  # one 64-bit draw per number
        drawn = np.searchsorted(self.cdf, uniform, side="right").reshape(self.n_rows, self.n_sample)
        self.cache = torch.as_tensor(drawn, dtype=torch.int64, device=self.device)
        self.pointer = 0

    def next(self) -> torch.Tensor:
        """The next ``n_sample`` negatives (shared by every lane of one step)."""
        if self.pointer >= self.n_rows:
            self._redraw()
        row = self.cache[self.pointer]
        self.pointer += 1
        return row

    def state_dict(self) -> dict:
        """Generator state at the start of the current cache, and how many rows were served from it."""
        return {"cache_state": json.dumps(self.cache_state), "pointer": self.pointer}

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream where ``state`` left it (the next row served is the one after it)."""
        self.rng.bit_generator.state = json.loads(state["cache_state"])
        self.rng.bit_generator.advance(int(state["pointer"]) * self.n_sample)
        self._redraw()
