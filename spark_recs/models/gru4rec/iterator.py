"""Session-parallel mini-batches: ``batch_size`` lanes each play one session event by event.

Sessions start in the order of their first event's time. A lane that finishes its session takes the next
one and only that lane's hidden state is reset; when no sessions are left the batch shrinks. The whole
schedule is computed once with NumPy (it is the same every epoch) so the training loop only slices it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Sessions:
    """Events grouped by session: ``items[offsets[s]:offsets[s + 1]]`` is session ``s`` in time order."""

    items: np.ndarray
    offsets: np.ndarray
    order: np.ndarray  # session indices sorted by the time of their first event

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def group_sessions(items: np.ndarray, session_ids, times) -> Sessions:
    """Sort events by (session, time) and order sessions by their first event's time.

    Both sorts are stable, so ties keep the input order (events) and the session-id order (sessions).
    """
    codes, _ = pd.factorize(np.asarray(session_ids), sort=True)
    times = np.asarray(times)
    by_session_time = np.lexsort((times, codes))
    codes = codes[by_session_time]
    boundaries = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(codes)]]).astype(np.int64)
    starts = times[by_session_time][offsets[:-1]]
    return Sessions(
        items=np.asarray(items, dtype=np.int64)[by_session_time],
        offsets=offsets,
        order=np.argsort(starts, kind="stable").astype(np.int64),
    )


@dataclass(frozen=True)
class Schedule:
    """Every training step of one epoch.

    Step ``t`` feeds ``inputs[bounds[t]:bounds[t + 1]]`` and predicts ``targets[...]`` (one row per active
    lane, in lane order). Rows with ``fresh`` set begin a new session (their hidden state starts at zero);
    ``keep[t]``, present only where the batch shrinks, selects the previous step's rows that go on.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    fresh: torch.Tensor
    bounds: list[int]
    keep: dict[int, torch.Tensor]

    @property
    def n_steps(self) -> int:
        return len(self.bounds) - 1

    @property
    def n_events(self) -> int:
        return self.bounds[-1]


def assign_lanes(durations: np.ndarray, n_lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """Start step and lane of each session (given in play order) when ``n_lanes`` lanes play them.

    A session goes to the lane that frees up first, ties to the lowest lane, which is the lane refill
    order of the reference iterator.
    """
    starts = np.empty(len(durations), dtype=np.int64)
    lanes = np.empty(len(durations), dtype=np.int64)
    free = [(0, lane) for lane in range(n_lanes)]
    for k, duration in enumerate(durations.tolist()):
        step, lane = heapq.heappop(free)
        starts[k], lanes[k] = step, lane
        heapq.heappush(free, (step + duration, lane))
    return starts, lanes


def build_schedule(sessions: Sessions, batch_size: int, min_lanes: int = 1, device="cpu") -> Schedule:
    """Session-parallel schedule with ``batch_size`` lanes; the epoch ends when fewer than ``min_lanes`` remain.

    Sessions of length 1 have no (input, target) pair and are skipped, as in the reference.
    ``min_lanes=2`` reproduces the reference's stop when there are no sampled negatives (one lane alone
    has no in-batch negative).
    """
    lengths = sessions.lengths[sessions.order]
    played = sessions.order[lengths > 1]
    durations = sessions.lengths[played] - 1
    n_lanes = min(batch_size, len(played))
    if n_lanes == 0:
        raise ValueError("no session has two or more events: nothing to train on")
    start_step, lane = assign_lanes(durations, n_lanes)

    # One row per transition: its step, lane and the event index of its input.
    session_of = np.repeat(np.arange(len(played)), durations)
    position = np.arange(len(session_of)) - np.repeat(np.cumsum(durations) - durations, durations)
    step = start_step[session_of] + position
    row_lane = lane[session_of]
    event = sessions.offsets[played][session_of] + position
    by_step_lane = np.lexsort((row_lane, step))
    step, row_lane, event, position = (a[by_step_lane] for a in (step, row_lane, event, position))

    counts = np.bincount(step)
    n_steps = int(np.searchsorted(-counts, -min_lanes, side="right"))  # counts never grow
    bounds = np.concatenate([[0], np.cumsum(counts[:n_steps])])
    keep = {}
    for t in np.flatnonzero(counts[1:n_steps] < counts[: n_steps - 1]) + 1:
        previous = row_lane[bounds[t - 1] : bounds[t]]
        current = row_lane[bounds[t] : bounds[t + 1]]
        keep[int(t)] = torch.as_tensor(np.searchsorted(previous, current), device=device)
    end = bounds[-1]
    return Schedule(
        inputs=torch.as_tensor(sessions.items[event[:end]], device=device),
        targets=torch.as_tensor(sessions.items[event[:end] + 1], device=device),
        fresh=torch.as_tensor(position[:end] == 0, device=device),
        bounds=bounds.tolist(),
        keep=keep,
    )
