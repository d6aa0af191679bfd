"""Running a trained network over whole sessions: next-item scores for evaluation, final scores for serving.

Sessions are processed in chunks sorted by decreasing length, so the sessions still going at position ``t``
are a prefix of the chunk and each step is one batched call. Every session starts from a zero hidden
state; dropout is off.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .network import GRU4RecNet

SCORE_BLOCK_ELEMENTS = 4_000_000


def _walk(net: GRU4RecNet, items: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Yield ``(t, k, top)``: the top-layer output after position ``t`` of the ``k`` sessions longer than ``t``.

    ``lengths`` must be sorted in decreasing order.
    """
    device = net.Wy.device
    hidden = net.zero_hidden(len(starts))
    for t in range(int(lengths[0]) if len(lengths) else 0):
        k = int(np.searchsorted(-lengths, -t, side="left"))
        hidden = [h[:k] for h in hidden]
        yield t, k, net.step(torch.as_tensor(items[starts[:k] + t], device=device), hidden)


@torch.no_grad()
def next_item_scores(
    net: GRU4RecNet, items: np.ndarray, offsets: np.ndarray, batch_size: int = 512
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``(scores of all items, next item)`` after every event but the last of each session.

    Session ``s`` is ``items[offsets[s]:offsets[s + 1]]`` (item indices).
    """
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 1]
    # Score blocks of at most ~16 MB: large temporaries cost page faults on every allocation.
    rows_per_block = max(1, SCORE_BLOCK_ELEMENTS // net.n_items)
    for chunk in range(0, len(order), batch_size):
        sessions = order[chunk : chunk + batch_size]
        starts = offsets[sessions]
        for t, k, top in _walk(net, items, starts, lengths[sessions] - 1):
            targets = torch.as_tensor(items[starts[:k] + t + 1], device=top.device)
            for block in range(0, k, rows_per_block):
                rows = slice(block, block + rows_per_block)
                yield net.score_all(top[rows]), targets[rows]


@torch.no_grad()
def session_scores(
    net: GRU4RecNet, sessions: Sequence[Sequence[int]], batch_size: int = 512, every_prefix: bool = False
) -> torch.Tensor:
    """Scores of all items after the last event of each session: ``(len(sessions), n_items)``; with
    ``every_prefix``, after every event: ``(total events, n_items)``, sessions in order, events in order."""
    lengths = np.array([len(s) for s in sessions], dtype=np.int64)
    if (lengths == 0).any():
        raise ValueError("cannot score an empty session")
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions] or [np.zeros(0, np.int64)])
    if len(items) and (items.min() < 0 or items.max() >= net.n_items):
        raise ValueError("session item indices out of range (map raw ids with item_indices first)")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    order = np.argsort(-lengths, kind="stable")
    outputs = torch.empty(len(items) if every_prefix else len(sessions), net.layers[-1], device=net.Wy.device)
    for chunk in range(0, len(order), batch_size):
        chunk_sessions = order[chunk : chunk + batch_size]
        chunk_lengths = lengths[chunk_sessions]
        for t, k, top in _walk(net, items, offsets[chunk_sessions], chunk_lengths):
            if every_prefix:
                rows = offsets[chunk_sessions[:k]] + t
                outputs[torch.as_tensor(rows, device=outputs.device)] = top
            else:
                # Sessions of length t + 1 end here: they sit just after those that go on.
                ending = int(np.searchsorted(-chunk_lengths, -(t + 1), side="left"))
                outputs[torch.as_tensor(chunk_sessions[ending:k], device=outputs.device)] = top[ending:k]
    return net.score_all(outputs)
