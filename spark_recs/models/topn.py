"""Top-N lists from score matrices: exact tie-breaking, candidate masks, raw ids in and out.

This is what a Spark worker runs on each batch of users (see :mod:`spark_recs.batch`) and what the
in-process ``Recommender.recommend`` runs for one user, so both give the same lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best columns per row as ``(indices, scores)``, ordered by score desc then index asc.

    Exact under ties: every column scoring above the k-th score is kept, and of those tied with it the
    lowest indices fill the remaining places.
    """
    rows, n_items = scores.shape
    k = min(k, n_items)
    if k == 0 or rows == 0:
        return torch.empty(rows, 0, dtype=torch.long), torch.empty(rows, 0, dtype=scores.dtype)
    if k == n_items:
        # A stable sort keeps equal scores in index order.
        ordered = torch.sort(scores, dim=1, descending=True, stable=True)
        return ordered.indices, ordered.values
    # One more than asked: where the (k+1)-th score equals the k-th, topk's choice among the tied
    # columns is arbitrary, and those rows are redone exactly.
    top = torch.topk(scores, k + 1, dim=1)
    items, values = top.indices[:, :k].clone(), top.values[:, :k].clone()
    tied_rows = torch.nonzero(top.values[:, k] == top.values[:, k - 1]).flatten()
    if len(tied_rows):
        exact = _exact_top(scores[tied_rows], k, top.values[tied_rows, k - 1 : k])
        items[tied_rows], values[tied_rows] = _by_score_then_index(scores[tied_rows], exact)
    # topk sorts by score; rows with equal scores inside the list still need index order.
    unordered = torch.nonzero((values[:, 1:] == values[:, :-1]).any(dim=1)).flatten()
    if len(unordered):
        items[unordered], values[unordered] = _by_score_then_index(scores[unordered], items[unordered])
    return items, values


def _exact_top(scores: torch.Tensor, k: int, threshold: torch.Tensor) -> torch.Tensor:
    """The columns above ``threshold`` and then the lowest-index columns equal to it, ``k`` per row."""
    above = scores > threshold
    tied = scores == threshold
    room = k - above.sum(dim=1, keepdim=True)
    keep = above | (tied & (torch.cumsum(tied, dim=1) <= room))
    return keep.nonzero()[:, 1].view(len(scores), k)


def _by_score_then_index(scores: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    items = torch.sort(items, dim=1).values
    picked = torch.gather(scores, 1, items)
    # A stable sort of index-ordered columns: equal scores keep the lower index first.
    order = torch.sort(picked, dim=1, descending=True, stable=True).indices
    return torch.gather(items, 1, order), torch.gather(picked, 1, order)


def recommend_frame(
    model,
    users: np.ndarray,
    n: int | None,
    candidates: Sequence | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """``user, rank, item, score`` for raw ``users`` of a fitted :class:`~spark_recs.models.base.Recommender`.

    ``candidates``: ``None`` (the default: items the user did not interact with in training, all items
    for an unknown user) or, per user, a sequence of raw item ids (ids unknown to the model are ignored).
    Items without a score (NaN) are never recommended. ``n=None``: every candidate.
    """
    users = np.asarray(users)
    indices = model.user_vocab.indices(users)
    k = model.n_items if n is None else int(n)
    frames = []
    for start in range(0, len(users), batch_size):
        rows = slice(start, start + batch_size)
        scores = model.score_users(indices[rows])
        hidden = torch.isnan(scores)
        if candidates is not None:
            hidden |= ~_candidate_mask(model, candidates[rows])
        elif model.rated_indices.numel():
            hidden |= model.rated_mask(indices[rows])
        scores.masked_fill_(hidden, float("-inf"))
        items, values = top_k(scores, k)
        finite = torch.isfinite(values)
        counts = finite.sum(dim=1).numpy()
        ranks = torch.arange(1, items.shape[1] + 1).expand_as(items)
        frames.append(
            pd.DataFrame(
                {
                    "user": np.repeat(users[rows], counts),
                    "rank": ranks[finite].numpy().astype(np.int32),
                    "item": model.item_vocab.ids[items[finite].numpy()],
                    "score": values[finite].numpy().astype(np.float32),
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {
                "user": users[:0],
                "rank": np.zeros(0, np.int32),
                "item": model.item_vocab.ids[:0],
                "score": np.zeros(0, np.float32),
            }
        )
    return pd.concat(frames, ignore_index=True)


def _candidate_mask(model, candidates: Sequence) -> torch.Tensor:
    mask = torch.zeros(len(candidates), model.n_items, dtype=torch.bool)
    for row, items in enumerate(candidates):
        if items is None:
            continue
        cols = model.item_vocab.indices(np.asarray(items))
        mask[row, torch.from_numpy(cols[cols >= 0])] = True
    return mask
