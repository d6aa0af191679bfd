"""Session-parallel mini-batches, checked against a plain step-by-step simulation of the lanes."""

import numpy as np
import pytest

from spark_recs.models.gru4rec.iterator import build_schedule, group_sessions


def random_sessions(n_sessions=40, seed=0):
    """Sessions (lists of item indices, length 1..7) with shuffled event rows and distinct start times."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = rng.permutation(n_sessions)[s] * 100.0
        for pos in range(int(rng.integers(1, 8))):
            rows.append((s + 1000, int(rng.integers(0, 50)), start + pos))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    session_ids, items, times = (np.array(c) for c in zip(*rows, strict=True))
    return session_ids, items, times


def by_start_time(session_ids, items, times):
    """The sessions' item lists in order of their first event (computed independently of the module)."""
    sessions = {}
    for s, i, t in sorted(zip(session_ids, items, times, strict=True), key=lambda r: (r[0], r[2])):
        sessions.setdefault(s, []).append((t, i))
    ordered = sorted(sessions.values(), key=lambda events: events[0][0])
    return [[i for _, i in events] for events in ordered]


def simulate(sessions, batch_size, min_lanes=1):
    """Reference semantics, one step at a time: per lane (input, target, starts a new session)."""
    queue = [s for s in sessions if len(s) > 1]
    lanes = [[s, 0] for s in queue[:batch_size]]
    taken = len(lanes)
    steps = []
    while len(lanes) >= min_lanes and lanes:
        steps.append([(s[p], s[p + 1], p == 0) for s, p in lanes])
        following = []
        for s, p in lanes:
            if p + 2 < len(s):
                following.append([s, p + 1])
            elif taken < len(queue):  # a finished lane takes the next session, in lane order
                following.append([queue[taken], 0])
                taken += 1
        lanes = following
    return steps


def schedule_steps(schedule):
    b = schedule.bounds
    return [
        list(
            zip(
                schedule.inputs[b[t] : b[t + 1]].tolist(),
                schedule.targets[b[t] : b[t + 1]].tolist(),
                schedule.fresh[b[t] : b[t + 1]].tolist(),
                strict=True,
            )
        )
        for t in range(schedule.n_steps)
    ]


def test_group_sessions_sorts_events_by_time_and_sessions_by_first_event():
    session_ids, items, times = random_sessions()
    grouped = group_sessions(items, session_ids, times)
    played = [grouped.items[grouped.offsets[s] : grouped.offsets[s + 1]].tolist() for s in grouped.order]
    assert played == by_start_time(session_ids, items, times)


def test_group_sessions_breaks_start_time_ties_by_session_id():
    grouped = group_sessions(
        np.array([7, 8, 9, 5]), np.array(["b", "b", "a", "a"]), np.array([1.0, 2.0, 1.0, 0.5])
    )
    # "a" starts at 0.5, before "b"; within "a" the event at 0.5 (item 5) comes first.
    assert [grouped.items[grouped.offsets[s] : grouped.offsets[s + 1]].tolist() for s in grouped.order] == [
        [5, 9],
        [7, 8],
    ]


@pytest.mark.parametrize("batch_size", [1, 3, 8, 100])
def test_schedule_matches_a_step_by_step_simulation(batch_size):
    session_ids, items, times = random_sessions(seed=batch_size)
    sessions = by_start_time(session_ids, items, times)
    schedule = build_schedule(group_sessions(items, session_ids, times), batch_size)
    assert schedule_steps(schedule) == simulate(sessions, batch_size)


def test_every_transition_is_used_exactly_once():
    session_ids, items, times = random_sessions(n_sessions=60, seed=5)
    sessions = by_start_time(session_ids, items, times)
    schedule = build_schedule(group_sessions(items, session_ids, times), 7)
    expected = sorted((s[p], s[p + 1]) for s in sessions for p in range(len(s) - 1))
    got = sorted(zip(schedule.inputs.tolist(), schedule.targets.tolist(), strict=True))
    assert got == expected
    assert schedule.n_events == len(expected)


def test_hidden_state_rows_follow_their_lane_through_resets_and_the_shrinking_tail():
    session_ids, items, times = random_sessions(n_sessions=30, seed=9)
    schedule = build_schedule(group_sessions(items, session_ids, times), 6)
    b = schedule.bounds
    assert b[1] - b[0] == 6  # every lane busy while sessions remain
    assert any(schedule.keep)  # the batch shrinks at the end
    for t in range(1, schedule.n_steps):
        previous_targets = schedule.targets[b[t - 1] : b[t]]
        if t in schedule.keep:
            previous_targets = previous_targets[schedule.keep[t]]
        inputs, fresh = schedule.inputs[b[t] : b[t + 1]], schedule.fresh[b[t] : b[t + 1]]
        assert len(previous_targets) == len(inputs)
        # A lane that goes on with its session feeds the item it was asked to predict one step before.
        assert (inputs[~fresh] == previous_targets[~fresh]).all()


def test_without_sampled_negatives_the_epoch_stops_below_two_lanes():
    session_ids, items, times = random_sessions(seed=3)
    sessions = by_start_time(session_ids, items, times)
    schedule = build_schedule(group_sessions(items, session_ids, times), 4, min_lanes=2)
    assert schedule_steps(schedule) == simulate(sessions, 4, min_lanes=2)
    assert min(np.diff(schedule.bounds)) >= 2


def test_length_one_sessions_are_skipped_and_all_of_them_is_an_error():
    grouped = group_sessions(np.array([1, 2, 3, 4]), np.array([1, 2, 2, 3]), np.array([0.0, 1.0, 2.0, 3.0]))
    schedule = build_schedule(grouped, 4)
    assert schedule.inputs.tolist() == [2] and schedule.targets.tolist() == [3]
    with pytest.raises(ValueError, match="two or more events"):
        build_schedule(group_sessions(np.array([1, 2]), np.array([1, 2]), np.array([0.0, 1.0])), 4)
