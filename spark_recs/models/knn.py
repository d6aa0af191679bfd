"""Item-item k-nearest-neighbour collaborative filtering (LensKit 0.14's ``item_knn.ItemItem``).

Fitting: each item's rating vector over users is (with ``center``) centred on the item's mean rating and
scaled to unit length; item-item similarity is the dot product of these vectors (cosine), and only
similarities ``>= min_sim`` (positive) between different items are kept (all of them, or the
``save_nbrs`` most similar per item), in a sparse matrix.

Scoring item ``i`` for user ``u``: the neighbours are the (up to) ``nnbrs`` items most similar to ``i``
among the items ``u`` rated in training. ``weighted-average``: ``sum(sim * r) / sum(|sim|)`` over the
neighbours' ratings ``r`` (item-mean-centred with ``center``, the target's mean added back);
``sum``: the sum of the neighbours' similarities. Fewer than ``min_nbrs`` neighbours: no score (NaN).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..core.params import NUMBER, POSITIVE_INT, ConfigError, Rule, help_text, param, signature
from .base import Recommender

log = logging.getLogger(__name__)

AGGREGATES = ("weighted-average", "sum")
FEEDBACK = {
    # feedback: (center, aggregate); implicit feedback also ignores rating values (every rating is 1).
    "explicit": (True, "weighted-average"),
    "implicit": (False, "sum"),
}

# Upper bounds: products per block of the similarity computation, elements of one dense scoring block.
_SIM_BLOCK_PRODUCTS = 1 << 22
_SCORE_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class ItemKNNParams:
    """:class:`ItemKNN`'s parameters, LensKit's defaults."""

    nnbrs: int | None = param(20, Rule(int, 1, nullable=True), "neighbours used per score (null: all)")
    min_nbrs: int = param(1, POSITIVE_INT, "fewer neighbours give no score")
    min_sim: float = param(
        1e-6,
        Rule(NUMBER, 0, math.inf, low_open=True, high_open=True),
        "smallest similarity kept (only positive similarities are)",
    )
    center: bool | None = param(
        None, Rule(bool, nullable=True), "centre ratings on the item means (null: the feedback's default)"
    )
    aggregate: str | None = param(
        None,
        Rule(str, choices=AGGREGATES, nullable=True),
        "how the neighbours' scores combine (null: the feedback's default)",
    )
    feedback: str = param(
        "explicit",
        Rule(str, choices=tuple(FEEDBACK)),
        "explicit: ratings are used; implicit: every interaction counts as rating 1",
    )
    save_nbrs: int | None = param(
        None, Rule(int, 1, nullable=True), "neighbours kept per item in the model (null: all)"
    )


class ItemKNN(Recommender):
    """Item-item k-NN (LensKit 0.14 ``ItemItem``); see the module docstring for the model.

    ``feedback``: ``"explicit"`` (ratings are used; by default ``center=True``,
    ``aggregate="weighted-average"``) or ``"implicit"`` (every interaction counts as rating 1; by default
    ``center=False``, ``aggregate="sum"``). ``center``/``aggregate`` given explicitly override those
    defaults. Other parameters: :class:`ItemKNNParams`. Unknown users get no scores.
    """

    Params = ItemKNNParams

    @property
    def predicts_ratings(self) -> bool:
        """Explicit feedback predicts ratings; implicit scores are sums of similarities."""
        return self.feedback == "explicit"

    def __init__(self, *args, **params) -> None:
        self._init_params(args, params)
        self.item_means: torch.Tensor | None = None
        self.rated_values: torch.Tensor | None = None
        self.sim_indptr: torch.Tensor | None = None
        self.sim_targets: torch.Tensor | None = None
        self.sim_values: torch.Tensor | None = None
        self._arrays: tuple | None = None

    __init__.__signature__ = signature(ItemKNNParams, positional=True)
    __init__.__doc__ = help_text(ItemKNNParams)

    def _resolve_params(self, params: dict) -> dict:
        """``center``/``aggregate`` left null take the feedback's defaults; ``min_nbrs <= nnbrs``."""
        default_center, default_aggregate = FEEDBACK[params["feedback"]]
        if params["center"] is None:
            params["center"] = default_center
        if params["aggregate"] is None:
            params["aggregate"] = default_aggregate
        if params["nnbrs"] is not None and params["min_nbrs"] > params["nnbrs"]:
            raise ConfigError(
                f"ItemKNN parameter min_nbrs ({params['min_nbrs']}) must not exceed nnbrs ({params['nnbrs']}): "
                "nothing would score"
            )
        return params

    # ---- fitting ------------------------------------------------------------------------------------

    def fit(self, ratings) -> ItemKNN:
        self.set_params()  # also checks attributes assigned directly
        started = time.perf_counter()
        explicit = self.feedback == "explicit"
        users, items, values = self._index_ratings(ratings, need_rating=explicit)
        if not explicit:
            values = np.ones(len(values))
        n_items = self.n_items
        counts = np.bincount(items, minlength=n_items)
        means = np.bincount(items, values, minlength=n_items) / counts
        # One value per (user, item) pair, in the order of the rated-items CSR (duplicates averaged).
        pairs, inverse = np.unique(users * n_items + items, return_inverse=True)
        pair_values = np.bincount(inverse, values) / np.bincount(inverse)
        pair_users, pair_items = pairs // n_items, pairs % n_items
        if self.center:
            pair_values = pair_values - means[pair_items]
        norms = np.sqrt(np.bincount(pair_items, pair_values**2, minlength=n_items))
        scaled = np.where(
            norms[pair_items] > 0, pair_values / np.where(norms > 0, norms, 1.0)[pair_items], 0.0
        )
        rows, cols, sims = self._similarities(pair_users, pair_items, scaled, len(self.user_vocab))
        # Stored by neighbour: row j lists the items i that keep j as a neighbour, with sim(i, j).
        order = np.argsort(cols, kind="stable")
        self.sim_indptr = torch.from_numpy(np.r_[0, np.cumsum(np.bincount(cols, minlength=n_items))])
        self.sim_targets = torch.from_numpy(rows[order].astype(np.int32))
        self.sim_values = torch.from_numpy(sims[order].astype(np.float32))
        self.item_means = torch.from_numpy(means)
        self.rated_values = torch.from_numpy(pair_values.astype(np.float32))
        self._arrays = None
        log.info(
            "ItemKNN: %d similarities >= %g for %d items (%d with neighbours) in %.2fs",
            len(sims),
            self.min_sim,
            n_items,
            int((np.bincount(rows, minlength=n_items) > 0).sum()),
            time.perf_counter() - started,
        )
        return self

    def _similarities(
        self, users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kept ``(target, neighbour, similarity)`` triples, by target, from unit item vectors."""
        n_items = self.n_items
        by_user = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([users, items])),
            torch.from_numpy(values),
            (n_users, n_items),
            check_invariants=False,
        ).coalesce()
        order = np.lexsort((users, items))
        users, items, values = users[order], items[order], values[order]
        item_starts = np.r_[0, np.cumsum(np.bincount(items, minlength=n_items))]
        # Products each item's row of the similarity matrix costs, to size the blocks.
        work = np.bincount(items, np.bincount(users, minlength=n_users)[users], minlength=n_items)
        # Consecutive items whose rows cost about _SIM_BLOCK_PRODUCTS products form a block.
        block_of = ((np.cumsum(work) - work) // _SIM_BLOCK_PRODUCTS).astype(np.int64)
        edges = np.r_[0, np.flatnonzero(np.diff(block_of)) + 1, n_items]
        bounds = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
        pieces = []
        for block, (first, last) in enumerate(bounds):
            start, end = item_starts[first], item_starts[last]
            rows = torch.sparse_coo_tensor(
                torch.from_numpy(np.vstack([items[start:end] - first, users[start:end]])),
                torch.from_numpy(values[start:end]),
                (last - first, n_users),
                check_invariants=False,
            ).coalesce()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                product = torch.sparse.mm(rows, by_user).coalesce()
            targets, neighbours = product.indices().numpy()
            sims = product.values().numpy()
            targets = targets + first
            keep = (sims >= self.min_sim) & (targets != neighbours)
            targets, neighbours, sims = targets[keep], neighbours[keep], sims[keep]
            if self.save_nbrs is not None:
                targets, neighbours, sims = _truncate_rows(targets, neighbours, sims, self.save_nbrs)
            pieces.append((targets, neighbours, sims))
            log.debug("ItemKNN: similarity block %d/%d: items %d-%d", block + 1, len(bounds), first, last)
        return tuple(np.concatenate(column) for column in zip(*pieces))

    # ---- state --------------------------------------------------------------------------------------

    def _tensors(self) -> dict:
        return {
            "item_means": self.item_means,
            "rated_values": self.rated_values,
            "sim_indptr": self.sim_indptr,
            "sim_targets": self.sim_targets,
            "sim_values": self.sim_values,
        }

    def _load_tensors(self, state: dict) -> None:
        self.item_means, self.rated_values = state["item_means"], state["rated_values"]
        self.sim_indptr, self.sim_targets = state["sim_indptr"], state["sim_targets"]
        self.sim_values = state["sim_values"]
        self._arrays = None

    def similarities(self) -> torch.Tensor:
        """The kept similarities as a sparse ``(n_items, n_items)`` CSR tensor: row ``i``, column ``j`` = sim(i, j)."""
        indptr, targets, sims = (t.numpy() for t in (self.sim_indptr, self.sim_targets, self.sim_values))
        neighbours = np.repeat(np.arange(self.n_items), np.diff(indptr))
        order = np.lexsort((neighbours, targets))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                torch.from_numpy(np.r_[0, np.cumsum(np.bincount(targets, minlength=self.n_items))]),
                torch.from_numpy(neighbours[order]),
                torch.from_numpy(sims[order]),
                (self.n_items, self.n_items),
                check_invariants=False,
            )

    # ---- scoring ------------------------------------------------------------------------------------

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        users = np.asarray(users, dtype=np.int64)
        out = torch.full((len(users), self.n_items), float("nan"))
        for row, user in enumerate(users):
            if user >= 0:
                out[row] = torch.from_numpy(self._score_user(int(user)))
        return out

    def _score_user(self, user: int) -> np.ndarray:
        """float32 scores of every item for one known user (NaN where there are too few neighbours)."""
        if self._arrays is None:
            self._arrays = tuple(
                t.numpy()
                for t in (
                    self.rated_indptr,
                    self.rated_indices,
                    self.rated_values,
                    self.sim_indptr,
                    self.sim_targets,
                    self.sim_values,
                    self.item_means,
                )
            )
        rated_indptr, rated_indices, rated_values, sim_indptr, sim_targets, sim_values, means = self._arrays
        n_items = self.n_items
        rated = rated_indices[rated_indptr[user] : rated_indptr[user + 1]]
        ratings = rated_values[rated_indptr[user] : rated_indptr[user + 1]]
        # Every (target, rated neighbour, similarity) entry: neighbour-major CSR rows of the rated items.
        starts = sim_indptr[rated]
        lengths = sim_indptr[rated + 1] - starts
        positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
        targets, sims = sim_targets[positions], sim_values[positions]
        counts = np.bincount(targets, minlength=n_items)
        weights = np.bincount(targets, sims, minlength=n_items)
        weighted = None
        if self.aggregate == "weighted-average":
            weighted = np.bincount(targets, sims * np.repeat(ratings, lengths), minlength=n_items)
        if self.nnbrs is not None and len(rated) > self.nnbrs:
            need = np.flatnonzero(counts > self.nnbrs)
            if len(need):
                best, chosen = self._top_neighbours(need, targets, lengths, sims)
                best = best.double()
                weights[need] = best.sum(dim=1).numpy()
                if weighted is not None:
                    weighted[need] = (best * torch.from_numpy(ratings).double()[chosen]).sum(dim=1).numpy()
                counts[need] = self.nnbrs
        if self.aggregate == "sum":
            scores = weights
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                scores = weighted / weights
            if self.center:
                scores = scores + means
        return np.where(counts >= self.min_nbrs, scores, np.nan).astype(np.float32)

    def _top_neighbours(
        self, need: np.ndarray, targets: np.ndarray, lengths: np.ndarray, sims: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``nnbrs`` largest similarities (and which rated item gave each) for the targets ``need``.

        ``targets``/``sims``: the entries of the rated items' neighbour rows, ``lengths`` entries per rated
        item, in order. A dense ``(n_items, columns)`` block of similarities per slice of the rated items,
        its ``need`` rows merged into a running top ``nnbrs`` (memory stays bounded for any user).
        """
        n_items, n_rated = self.n_items, len(lengths)
        ends = np.cumsum(lengths)
        width = max(1, min(n_rated, _SCORE_BLOCK_ELEMENTS // n_items))
        rows = torch.from_numpy(need)
        best = chosen = None
        for first in range(0, n_rated, width):
            last = min(first + width, n_rated)
            lo, hi = (ends[first - 1] if first else 0), ends[last - 1]
            columns = np.repeat(np.arange(last - first), lengths[first:last])
            block = np.zeros(n_items * (last - first), dtype=np.float32)
            block[targets[lo:hi].astype(np.int64) * (last - first) + columns] = sims[lo:hi]
            block = torch.from_numpy(block).view(n_items, last - first)[rows]
            which = torch.arange(first, last).expand(len(need), -1)
            if best is not None:
                block, which = torch.cat([best, block], dim=1), torch.cat([chosen, which], dim=1)
            best, picked = torch.topk(block, min(self.nnbrs, block.shape[1]), dim=1)
            chosen = torch.gather(which, 1, picked)
        return best, chosen


def _truncate_rows(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, keep: int):
    """Per row, the ``keep`` largest values (ties: lower column first), in (row, column) order."""
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    mask = rank < keep
    rows, cols, values = rows[mask], cols[mask], values[mask]
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], values[order]
