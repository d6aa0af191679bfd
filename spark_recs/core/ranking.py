"""The ranking core: the exact rank of a target among scores, exact rank counts, and each ranking metric once.

**Ranks** (:func:`target_ranks`, 1 = best). With ``higher`` / ``equal`` the numbers of items scoring strictly
above / the same as the target (the target itself counted in ``equal``) and ``before`` those tied with it at
a lower column index, the tie modes (:data:`TIE_MODES`) are:

- ``standard``: ``higher + 1`` (the best place among the ties)
- ``conservative``: ``higher + equal`` (the worst place; GRU4Rec's evaluation default)
- ``median``: ``higher + (equal - 1) / 2 + 1`` (the middle place: a whole or half number)
- ``ordinal``: ``higher + before + 1``, the place an exact top-k (score desc, then index asc) lists the
  target at (the RL holdout's rule)

A target without a score (NaN) or excluded (``-inf``) gets rank ``inf``: a miss at every cut-off.

**Metrics** of one ranked list ``L`` against its test items ``T`` at cut-off ``k`` (``L_k`` = the rows of
rank <= k; no ``k``: the whole list): ``hits`` = |L_k ∩ T|, ``first`` = the rank of the first hit in ``L_k``,
``dcg`` = the sum over the hits of ``gain / discount(rank)`` and ``ideal`` = the same sum over T's gains
sorted descending, at positions 1, 2, ... <= k. nDCG = dcg / ideal has two names for its two discounts
(:data:`DISCOUNTS`): ``ndcg`` with LensKit's ``max(1, log2 rank)`` (ranks 1 and 2 weigh the same; what
``RecListAnalysis`` and MultiEval report) and ``ndcg_log2p1`` with the textbook ``log2(rank + 1)``. With one
test item per list (next-item targets) recall@k = hit@k and both ideal DCGs are 1: :class:`RankCounts`.

**Beyond accuracy**: formulas of a set of top-k lists, one per user (``U`` the lists, ``I`` the catalogue:
the training items), from each item's *exposure* ``c_i`` (the lists with ``i`` in their top k) and
*popularity* ``p_i`` (its training users, of ``N``):

- catalogue coverage@k = |{i in I: c_i > 0}| / |I| (RePlay's ``Coverage``; Microsoft Recommenders'
  ``catalog_coverage``)
- Gini index of exposure@k = sum_j (2j - |I| - 1) c_(j) / (|I| sum_i c_i), the exposures of every
  catalogue item sorted ascending (``j = 1..|I|``): 0 when every item is recommended equally often, near
  1 when a few items take all the exposure (RecBole's ``GiniIndex``)
- novelty@k = sum_i c_i (-log2(p_i / N)) / sum_i c_i, the mean self-information of the recommended
  (user, item) pairs (Microsoft Recommenders' ``novelty``; items without training users left out)
- average recommendation popularity@k = sum_i c_i p_i / sum_i c_i (Abdollahpouri et al.'s ARP, the mean
  over users of the mean popularity of their list, when every list has k items)
- personalisation@k = 1 - (sum_i c_i (c_i - 1)) / (|U| (|U| - 1) k), one minus the mean overlap
  |L_u ∩ L_v| / k over pairs of users: exactly recmetrics' one minus the mean pairwise cosine of the
  users' lists when every list has k items, computed from the exposures without visiting the pairs
- intra-list diversity@k = the mean over the lists of the mean over their item pairs of 1 - cos(e_i, e_j),
  ``e`` item vectors (genres, model embeddings) (Ziegler et al.; Microsoft Recommenders' ``diversity``)

The metric functions work on NumPy arrays and scalars (:data:`NUMPY`, the default) and on any other column
type given its :class:`Ops` (Spark columns: :data:`spark_recs.evaluation.accuracy.SPARK`), so the pandas and
Spark top-N evaluations share one formula per metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

TIE_MODES = ("standard", "conservative", "median", "ordinal")
log = logging.getLogger(__name__)


# ---- exact ranks ------------------------------------------------------------------------------------


def check_tie_mode(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`TIE_MODES`."""
    if mode not in TIE_MODES:
        raise ValueError(f"unknown rank mode {mode!r}; expected one of {TIE_MODES}")


def _count(compare, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per row, how many scores ``compare`` true against the row's target score."""
    # Counting 0/1 floats is several times faster than summing a bool tensor; exact below 2**24 items.
    dtype = torch.float32 if scores.shape[1] < 2**24 else torch.float64
    flags = compare(scores, target, out=torch.empty(scores.shape, dtype=dtype, device=scores.device))
    return flags.sum(dim=1).double()


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, mode: str = "conservative") -> torch.Tensor:
    """Rank of each row's target column among all columns of ``scores`` (float64; halves in ``median``).

    ``scores`` is ``(n, n_items)``, ``targets`` the ``n`` target columns; ``mode`` one of :data:`TIE_MODES`.
    """
    check_tie_mode(mode)
    targets = targets.reshape(-1, 1).to(scores.device)
    target = scores.gather(1, targets)
    if mode == "conservative":
        ranks = _count(torch.ge, scores, target)
    else:
        higher = _count(torch.gt, scores, target)
        if mode == "standard":
            ranks = higher + 1
        elif mode == "median":
            ranks = higher + (_count(torch.ge, scores, target) - higher - 1) / 2 + 1
        else:
            lower_index = torch.arange(scores.shape[1], device=scores.device) < targets
            ranks = higher + ((scores == target) & lower_index).sum(dim=1).double() + 1
    unranked = target.flatten().isnan() | (target.flatten() == float("-inf"))
    return torch.where(unranked, float("inf"), ranks)


# ---- metric formulas ----------------------------------------------------------------------------------


class Ops(NamedTuple):
    """The few operations the metric formulas need, for one column type."""

    where: Callable  # (condition, if true, if false)
    divide: Callable  # a / b, without warnings where b is 0
    minimum: Callable
    maximum: Callable
    log2: Callable
    isnull: Callable


def _quiet(function):
    """``function`` on float64 arrays, without NumPy's warnings for x / 0 and log2(0)."""

    def run(*args):
        with np.errstate(divide="ignore", invalid="ignore"):
            return function(*(np.asarray(a, dtype=np.float64) for a in args))

    return run


NUMPY = Ops(np.where, _quiet(np.divide), np.minimum, np.maximum, _quiet(np.log2), np.isnan)


#: nDCG metric name -> its discount ``(ranks, ops)``: LensKit's ``max(1, log2 rank)``, the textbook
#: ``log2(rank + 1)``.
DISCOUNTS = {
    "ndcg": lambda ranks, ops: ops.maximum(ops.log2(ranks), 1.0),
    "ndcg_log2p1": lambda ranks, ops: ops.log2(ranks + 1),
}


def discounted(gains, ranks, metric: str = "ndcg", ops: Ops = NUMPY):
    """The DCG terms ``gain / discount(rank)`` of nDCG ``metric`` (a key of :data:`DISCOUNTS`)."""
    return ops.divide(gains, DISCOUNTS[metric](ranks, ops))


def precision(hits, n_recs, k: int | None = None, ops: Ops = NUMPY):
    """hits / k; without ``k``: hits / list length (0 for an empty list)."""
    if k is not None:
        return ops.divide(hits, k)
    return ops.where(n_recs > 0, ops.divide(hits, n_recs), 0.0)


def recall(hits, n_truth, k: int | None = None, ops: Ops = NUMPY):
    """hits / min(test items, k); without ``k``: hits / test items (NaN without test items)."""
    return ops.divide(hits, n_truth if k is None else ops.minimum(n_truth, k))


def hit(hits, ops: Ops = NUMPY):
    """1.0 where there is a hit, else 0.0."""
    return ops.where(hits > 0, 1.0, 0.0)


def reciprocal_rank(first, ops: Ops = NUMPY):
    """1 / the rank of the first hit; 0.0 where there is none (``first`` missing)."""
    return ops.where(ops.isnull(first), 0.0, ops.divide(1.0, first))


def ndcg(dcg, ideal, ops: Ops = NUMPY):
    """DCG / ideal DCG, 0.0 where the ideal DCG is 0 (with either discount: the name tells which)."""
    return ops.where(ideal > 0, ops.divide(dcg, ideal), 0.0)


# ---- beyond accuracy ----------------------------------------------------------------------------------


def coverage(exposure: np.ndarray) -> float:
    """The share of the catalogue's items (``exposure``: one per catalogue item) recommended at all."""
    exposure = np.asarray(exposure)
    return float((exposure > 0).mean()) if len(exposure) else float("nan")


def gini(exposure: np.ndarray) -> float:
    """The Gini index of the catalogue's exposures (0: equal; NaN when nothing is recommended)."""
    ordered = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = len(ordered), ordered.sum()
    if not total:
        return float("nan")
    return float(((2 * np.arange(1, n + 1) - n - 1) * ordered).sum() / (n * total))


def exposure_mean(exposure: np.ndarray, values: np.ndarray) -> float:
    """The mean of ``values`` over the recommended (user, item) pairs: ``sum c_i v_i / sum c_i``."""
    exposure, values = np.asarray(exposure, dtype=np.float64), np.asarray(values, dtype=np.float64)
    total = exposure.sum()
    return float((exposure * values).sum() / total) if total else float("nan")


def self_information(popularity: np.ndarray, n_users: int) -> np.ndarray:
    """``-log2(p_i / N)`` of each item's training users ``p_i`` out of ``N``."""
    return -np.log2(np.asarray(popularity, dtype=np.float64) / n_users)


def personalisation(exposure: np.ndarray, n_lists: int, k: int) -> float:
    """One minus the mean overlap ``|L_u ∩ L_v| / k`` of the ``n_lists`` lists, pair by pair."""
    exposure = np.asarray(exposure, dtype=np.float64)
    if n_lists < 2:
        return float("nan")
    return float(1 - (exposure * (exposure - 1)).sum() / (n_lists * (n_lists - 1) * k))


def intra_list_distance(vectors: np.ndarray) -> float:
    """The mean ``1 - cos`` over the pairs of rows of one list's item vectors (NaN under two rows)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n < 2:
        return float("nan")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    upper = np.triu_indices(n, 1)
    return float((1 - (unit @ unit.T)[upper]).mean())


# ---- rank counts ----------------------------------------------------------------------------------------


@dataclass
class RankCounts:
    """How many targets got each rank up to ``max_cutoff`` (in half steps), and how many targets in all.

    Integer counts, so partial results from shards merge into exactly the single-process numbers. Each
    metric is the mean over all targets of the one-target list's metric (rank beyond the cut-off: 0).
    """

    max_cutoff: int
    counts: np.ndarray = field(default=None)
    n: int = 0

    def __post_init__(self):
        if self.counts is None:
            self.counts = np.zeros(2 * self.max_cutoff + 1, dtype=np.int64)

    def add(self, ranks, times=None) -> RankCounts:
        """Count more ranks (a tensor or array as :func:`target_ranks` returns; ``inf``: a miss).

        ``times``: how many targets got each of ``ranks`` (default: one each).
        """
        doubled = 2 * np.asarray(torch.as_tensor(ranks).cpu(), dtype=np.float64)
        times = np.ones(len(doubled), dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
        kept = doubled <= 2 * self.max_cutoff
        kept_doubled = np.rint(doubled[kept]).astype(np.int64)
        self.counts += np.bincount(kept_doubled, times[kept], len(self.counts)).astype(np.int64)
        self.n += int(times.sum())
        return self

    def merge(self, other: RankCounts) -> RankCounts:
        """The counts of both (a new object)."""
        if other.max_cutoff != self.max_cutoff:
            raise ValueError("cannot merge rank counts with different max_cutoff")
        return RankCounts(self.max_cutoff, self.counts + other.counts, self.n + other.n)

    def _mean(self, cutoff: int, metric) -> float:
        """The mean over all targets of ``metric(ranks)``, evaluated at the ranks 1, 1.5, ... ``cutoff``."""
        if cutoff > self.max_cutoff:
            raise ValueError(f"cut-off {cutoff} is beyond the counted ranks (max_cutoff {self.max_cutoff})")
        if not self.n:
            return 0.0
        ranks = np.arange(2, 2 * cutoff + 1) / 2
        return float((self.counts[2 : 2 * cutoff + 1] * metric(ranks)).sum() / self.n)

    def recall(self, cutoff: int) -> float:
        """recall@cutoff (= hit@cutoff with one target): the share of targets ranked within ``cutoff``."""
        return self._mean(cutoff, np.ones_like)

    def mrr(self, cutoff: int) -> float:
        """MRR@cutoff: the mean reciprocal rank, 0 beyond ``cutoff``."""
        return self._mean(cutoff, reciprocal_rank)

    def ndcg(self, cutoff: int, metric: str = "ndcg") -> float:
        """nDCG@cutoff with one target: ``metric`` ``"ndcg"`` (LensKit's discount) or ``"ndcg_log2p1"``."""
        ideal = discounted(1.0, 1.0, metric)
        return self._mean(cutoff, lambda ranks: ndcg(discounted(1.0, ranks, metric), ideal))


# ---- next-item ranks of test sessions ------------------------------------------------------------------


def session_rank_counts(
    model,
    test_data: pd.DataFrame,
    max_cutoff: int,
    batch_size: int = 512,
    mode: str = "conservative",
    item_key: str = "ItemId",
    session_key: str = "SessionId",
    time_key: str = "Time",
    observe=None,
) -> tuple[RankCounts, int, int]:
    """Next-item ranks of ``model`` on the sessions of ``test_data``: ``(RankCounts, n_sessions, n_dropped)``.

    For every event of every test session but its last (time order, ties by item id), the model scores all
    its items after the session's events so far and the next event's item is the target. Test events on
    items the model does not know are dropped first (``n_dropped``); ``n_sessions`` counts the sessions with
    at least one target. ``model`` has ``item_indices`` (-1: unknown) and ``next_item_scores(items, offsets,
    batch_size)`` yielding ``(scores, targets)`` batches (GRU4Rec's). ``observe(scores)``, when given,
    sees every batch of scores (e.g. to count the items recommended).
    """
    check_tie_mode(mode)
    missing = [c for c in (session_key, item_key, time_key) if c not in test_data.columns]
    if missing:
        raise ValueError(f"test data lacks column(s) {missing}; it has {list(test_data.columns)}")
    items = model.item_indices(test_data[item_key].to_numpy())
    known = items >= 0
    if len(items) and not known.any():
        log.warning(
            "no test event is on an item the model knows (test ids %s): check that the item id types match",
            test_data[item_key].dtype,
        )
    # Ties in time go by item id (as in recommend_sessions): a Spark shard's rows come in no set order.
    data = test_data.loc[known, [session_key, time_key, item_key]].assign(_item=items[known])
    data = data.sort_values([session_key, time_key, item_key])
    codes = pd.factorize(data[session_key].to_numpy())[0]
    offsets = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [len(codes)]]).astype(np.int64)
    counts = RankCounts(max_cutoff)
    batches = model.next_item_scores(data["_item"].to_numpy(np.int64), offsets, batch_size=batch_size)
    for scores, targets in batches:
        counts.add(target_ranks(scores, targets, mode))
        if observe is not None:
            observe(scores)
    n_sessions = int((np.diff(offsets) > 1).sum())
    return counts, n_sessions, int((~known).sum())
