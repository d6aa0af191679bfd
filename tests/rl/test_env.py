"""FrameEnv and SeqEnv: hand-computed transitions, pandas/Spark parity, seeding, the user split, bad input,
and FrameEnv on the real ml-latest-small with feature-derived embeddings."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_data

from spark_recs.data.movielens import load_items, load_ratings, load_tags
from spark_recs.data.schema import SchemaError
from spark_recs.rl.embeddings import ItemEmbeddings
from spark_recs.rl.env import FrameEnv, SeqEnv, user_histories

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Rows 10, 20, 30, 40, 50 of the table are dense indices 0..4.
EMBEDDINGS = ItemEmbeddings([30, 10, 50, 20, 40], [[1, 1], [1, 0], [0, 3], [0, 1], [2, -1]])

# Listed out of time order; user 7 rated 40 and 20 at the same time (20 comes first: the lower item id).
# Rescaled ratings 2 * (r - 2.5): user 7 -> 3, -1, 5, -3, 1; user 3 -> -4, 4, 2.
RATINGS = pd.DataFrame(
    [
        (7, 40, 5.0, 5),
        (3, 10, 3.5, 100),
        (7, 30, 4.0, 1),
        (9, 50, 5.0, 1),
        (7, 20, 2.0, 5),
        (3, 20, 0.5, 50),
        (7, 50, 3.0, 12),
        (3, 30, 4.5, 70),
        (7, 10, 1.0, 9),
        (9, 10, 5.0, 2),
    ],
    columns=["user", "item", "rating", "timestamp"],
)

# FrameEnv(frame_size=2) windows per user, in time order: state, action, reward, next_state, done, item,
# frame_items. User 9 (two ratings) has no window of 3 and is excluded.
EXPECTED_WINDOWS = {
    3: [([0, 1, 1, 1, -4, 4], [1, 0], 2, [1, 1, 1, 0, 4, 2], 1, 0, [1, 2])],
    7: [
        ([1, 1, 0, 1, 3, -1], [2, -1], 5, [0, 1, 2, -1, -1, 5], 0, 3, [2, 1]),
        ([0, 1, 2, -1, -1, 5], [1, 0], -3, [2, -1, 1, 0, 5, -3], 0, 0, [1, 3]),
        ([2, -1, 1, 0, 5, -3], [0, 3], 1, [1, 0, 0, 3, -3, 1], 1, 4, [3, 0]),
    ],
}
FIELDS = ["state", "action", "reward", "next_state", "done", "item", "frame_items"]


def rows_of_user(batch, env, user):
    """The batch's rows for one raw user id, as plain lists per field (rows stay in time order)."""
    mask = batch["user"] == int(env.user_vocab.indices([user])[0])
    return [tuple(batch[f][mask][i].tolist() for f in FIELDS) for i in range(int(mask.sum()))]


def tiny_env(ratings=RATINGS, **kwargs):
    params = dict(frame_size=2, batch_size=10, test_size=0.0, min_seq_size=1) | kwargs
    return FrameEnv(EMBEDDINGS, ratings, **params)


@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_frame_windows_by_hand(engine, request):
    ratings = RATINGS if engine == "pandas" else request.getfixturevalue("spark").createDataFrame(RATINGS)
    env = tiny_env(ratings)
    assert env.user_vocab.ids.tolist() == [3, 7] and env.excluded_users == 1
    assert (env.state_dim, env.action_dim) == (6, 2)
    batch = env.train_batch()
    assert set(batch) == set(FIELDS) | {"user"}
    assert batch["state"].dtype == torch.float32 and batch["item"].dtype == torch.int64
    assert batch["frame_items"].shape == (4, 2) and batch["user"].dtype == torch.int64
    for user, windows in EXPECTED_WINDOWS.items():
        assert rows_of_user(batch, env, user) == windows, user


def test_last_frames_are_the_states_after_the_whole_history():
    env = tiny_env()
    frames = env.last_frames([7, 3])
    assert frames["user"].tolist() == [1, 0]
    assert frames["state"].tolist() == [[1, 0, 0, 3, -3, 1], [1, 1, 1, 0, 4, 2]]
    assert frames["frame_items"].tolist() == [[0, 4], [2, 0]]
    assert env.last_frames()["user"].tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"1 users are not in this environment.*\[9\]"):
        env.last_frames([3, 9])


def test_frame_size_is_honoured():
    env = tiny_env(frame_size=3)
    batch = env.train_batch()
    # Only user 7 (five ratings) has a window of four: two windows of 3 * 2 + 3 state values.
    assert env.user_vocab.ids.tolist() == [7] and env.excluded_users == 2
    assert batch["state"].shape == (2, 9) and batch["frame_items"].tolist() == [[2, 1, 3], [1, 3, 0]]
    assert batch["done"].tolist() == [0, 1]


def test_rating_rescaling_is_configurable():
    env = tiny_env(rating_center=0.0, rating_scale=1.0)
    frames = env.last_frames([3])
    assert frames["state"][0, -2:].tolist() == [4.5, 3.5]


def test_pandas_and_spark_give_identical_histories(any_spark):
    rng = np.random.default_rng(3)
    n = 400
    ratings = pd.DataFrame(
        {
            "u": rng.integers(0, 30, n),
            "i": rng.integers(0, 25, n),
            "r": rng.integers(1, 11, n) / 2,
            "t": rng.integers(0, 40, n),  # many ties in time
        }
    )
    columns = {"user": "u", "item": "i", "rating": "r", "timestamp": "t"}
    expected = user_histories(ratings, columns)
    got = user_histories(any_spark.createDataFrame(ratings), columns)
    for field in ("users", "offsets", "items", "ratings"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)
    # Independent check of the order: time, then item, then rating within each user.
    ordered = ratings.sort_values(["u", "t", "i", "r"])
    np.testing.assert_array_equal(expected.items, ordered["i"].to_numpy())
    np.testing.assert_array_equal(expected.lengths, ordered.groupby("u").size().to_numpy())


def synthetic(n_users=60, n_items=20, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 16, n_users)
    ratings = pd.DataFrame(
        {
            "user": np.repeat(np.arange(100, 100 + n_users), lengths),
            "item": rng.integers(0, n_items, lengths.sum()),
            "rating": rng.integers(1, 6, lengths.sum()).astype(float),
            "timestamp": rng.permutation(lengths.sum()),
        }
    )
    embeddings = ItemEmbeddings(np.arange(n_items), rng.normal(size=(n_items, 3)))
    return embeddings, ratings


def epoch(loader):
    return [(b["user"].clone(), b["state"].clone()) for b in loader]


def test_seeded_split_and_batch_order():
    embeddings, ratings = synthetic()
    make = lambda seed: FrameEnv(  # noqa: E731
        embeddings, ratings, frame_size=3, batch_size=8, test_size=0.2, min_seq_size=1, seed=seed
    )
    a, b, c = make(5), make(5), make(6)
    np.testing.assert_array_equal(a.test_users, b.test_users)
    assert not np.array_equal(a.test_users, c.test_users)
    for (users_a, states_a), (users_b, states_b) in zip(epoch(a.train_dataloader), epoch(b.train_dataloader)):
        assert torch.equal(users_a, users_b) and torch.equal(states_a, states_b)
    assert torch.equal(a.train_batch()["user"], b.train_batch()["user"])
    assert torch.equal(a.test_batch()["state"], b.test_batch()["state"])
    # The next epoch is shuffled differently.
    first, second = epoch(a.train_dataloader), epoch(a.train_dataloader)
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(first, second))


@pytest.mark.parametrize("test_size", [0.0, 0.05, 0.2, 0.5])
def test_test_size_and_window_counts(test_size):
    embeddings, ratings = synthetic()
    env = FrameEnv(embeddings, ratings, frame_size=3, batch_size=8, test_size=test_size, min_seq_size=1)
    n_users = ratings["user"].nunique()
    assert len(env.test_users) == math.ceil(test_size * n_users)
    assert len(np.intersect1d(env.train_users, env.test_users)) == 0
    assert sorted(np.r_[env.train_users, env.test_users].tolist()) == list(range(n_users))
    lengths = ratings.groupby("user").size()
    for users, loader in ((env.train_users, env.train_dataloader), (env.test_users, env.test_dataloader)):
        batches = list(loader)
        seen = torch.cat([b["user"] for b in batches]) if batches else torch.zeros(0, dtype=torch.int64)
        assert sorted(set(seen.tolist())) == users.tolist()
        expected = sum(lengths[env.user_vocab.ids[u]] - 3 for u in users)
        assert len(seen) == expected
        assert sum(int(b["done"].sum()) for b in batches) == len(users)
    if test_size == 0:
        with pytest.raises(ValueError, match="no test users"):
            env.test_batch()


def test_missing_embeddings_raise_or_are_dropped_with_counts():
    partial = ItemEmbeddings([10, 20, 30], [[1, 0], [0, 1], [1, 1]])
    with pytest.raises(
        ValueError, match=r"2 items \(3 ratings\) have no embedding.*\[40, 50\].*missing_items='drop'"
    ):
        FrameEnv(partial, RATINGS, frame_size=2, test_size=0.0, min_seq_size=1)
    env = FrameEnv(partial, RATINGS, frame_size=2, test_size=0.0, min_seq_size=1, missing_items="drop")
    assert (env.dropped_ratings, env.dropped_items, env.excluded_users) == (3, 2, 1)
    # User 7 keeps 30, 20, 10 (ratings 3, -1, -3): one window.
    batch = env.train_batch()
    assert rows_of_user(batch, env, 7) == [
        ([1, 1, 0, 1, 3, -1], [1, 0], -3, [0, 1, 1, 0, -1, -3], 1, 0, [2, 1])
    ]


def test_embeddings_of_different_dimensions_are_refused():
    table = pd.DataFrame({"item": [10, 20, 30], "embedding": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0, 1.0]]})
    with pytest.raises(ValueError, match=r"same dimension: 1 of 3 items.*not 2.*\[30\]"):
        FrameEnv(table, RATINGS, frame_size=2, test_size=0.0, min_seq_size=1)


def test_short_users_are_excluded_counted_and_logged(caplog):
    with caplog.at_level("INFO", logger="spark_recs.rl.env"):
        env = tiny_env(min_seq_size=4)
    assert env.user_vocab.ids.tolist() == [7] and env.excluded_users == 2
    assert "2 users with fewer than 4 ratings excluded" in caplog.text
    with pytest.raises(ValueError, match="no user has at least 6 ratings"):
        tiny_env(min_seq_size=6)


def test_column_mapping_and_missing_columns():
    renamed = RATINGS.rename(columns={"user": "userId", "item": "movieId"})
    with pytest.raises(SchemaError, match=r"missing column\(s\) 'user'.*'item'"):
        tiny_env(renamed)
    env = tiny_env(renamed, columns={"user": "userId", "item": "movieId"})
    assert rows_of_user(env.train_batch(), env, 3) == EXPECTED_WINDOWS[3]


def test_missing_values_and_text_times_are_named(spark):
    broken = RATINGS.astype({"rating": object})
    broken.loc[[0, 3], "rating"] = [None, "n/a"]
    with pytest.raises(ValueError, match=r"2 in 'rating'"):
        tiny_env(broken)
    no_item = RATINGS.astype({"item": object})
    no_item.loc[6, "item"] = None
    with pytest.raises(ValueError, match=r"values: 1 in 'item';"):
        tiny_env(spark.createDataFrame(no_item))
    text_times = RATINGS.astype({"timestamp": str})
    for frame in (text_times, spark.createDataFrame(text_times)):
        with pytest.raises(ValueError, match="'timestamp' holds text"):
            tiny_env(frame)


def test_paths_read_by_the_source_resolver_with_the_default_or_given_session(tmp_path, spark):
    path = tmp_path / "ratings.csv"
    RATINGS.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    EMBEDDINGS.save(tmp_path / "embeddings.npz")
    columns = {"user": "userId", "item": "movieId"}
    envs = [
        FrameEnv(str(tmp_path / "embeddings.npz"), path, 2, test_size=0.0, min_seq_size=1, columns=columns),
        FrameEnv(
            tmp_path / "embeddings.npz",
            str(path),
            2,
            test_size=0.0,
            min_seq_size=1,
            columns=columns,
            spark=spark,
        ),
    ]
    for env in envs:
        assert env.user_vocab.ids.tolist() == [3, 7]
        assert env.items.tolist() == [1, 2, 0, 2, 1, 3, 0, 4]
        assert env.ratings.tolist() == [-4, 4, 2, 3, -1, 5, -3, 1]


def test_a_movielens_folder_path_is_read_by_its_loader(tmp_path, spark):
    lines = [f"{u}::{i}::{r}::{t}" for u, i, r, t in RATINGS.itertuples(index=False)]
    (tmp_path / "ratings.dat").write_text("\n".join(lines) + "\n")
    from_folder = tiny_env(str(tmp_path), spark=spark)
    from_frame = tiny_env()
    assert from_folder.user_vocab.ids.tolist() == from_frame.user_vocab.ids.tolist() == [3, 7]
    assert from_folder.items.tolist() == from_frame.items.tolist()
    assert from_folder.ratings.tolist() == from_frame.ratings.tolist()


class GRUEncoder(torch.nn.Module):
    """A causal state encoder: the GRU's output after every event."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gru = torch.nn.GRU(dim, hidden, batch_first=True)

    def forward(self, inputs, lengths):
        return self.gru(inputs)[0]


def test_seq_env_states_are_the_encoder_over_each_prefix():
    torch.manual_seed(0)
    encoder = GRUEncoder(3, 4)
    env = SeqEnv(EMBEDDINGS, RATINGS, encoder, batch_size=10, test_size=0.0, min_seq_size=1)
    assert env.user_vocab.ids.tolist() == [3, 7, 9] and env.action_dim == 2
    batch = env.train_batch()
    # Events (embedding ++ rescaled rating) per user, in time order.
    events = {
        3: [[0, 1, -4], [1, 1, 4], [1, 0, 2]],
        7: [[1, 1, 3], [0, 1, -1], [2, -1, 5], [1, 0, -3], [0, 3, 1]],
        9: [[0, 3, 5], [1, 0, 5]],
    }
    items = {3: [1, 2, 0], 7: [2, 1, 3, 0, 4], 9: [4, 0]}
    for user, seq in events.items():
        mask = batch["user"] == int(env.user_vocab.indices([user])[0])
        seq = torch.tensor(seq, dtype=torch.float32)
        with torch.no_grad():
            prefix_states = [encoder.gru(seq[:t].unsqueeze(0))[1][0, 0] for t in range(1, len(seq) + 1)]
        n = len(seq) - 1
        assert int(mask.sum()) == n
        torch.testing.assert_close(batch["state"][mask].detach(), torch.stack(prefix_states[:-1]))
        torch.testing.assert_close(batch["next_state"][mask].detach(), torch.stack(prefix_states[1:]))
        assert batch["action"][mask].tolist() == seq[1:, :2].tolist()
        assert batch["reward"][mask].tolist() == seq[1:, 2].tolist()
        assert batch["item"][mask].tolist() == items[user][1:]
        assert batch["done"][mask].tolist() == [0.0] * (n - 1) + [1.0]
    batch["state"].sum().backward()
    assert encoder.gru.weight_ih_l0.grad is not None


def test_seq_env_rejects_a_non_sequence_encoder():
    env = SeqEnv(EMBEDDINGS, RATINGS, lambda x, lengths: x[:, -1], test_size=0.0, min_seq_size=1)
    with pytest.raises(ValueError, match=r"must return \(users, steps, state\)"):
        env.train_batch()


@pytest.mark.slow
def test_frame_env_on_ml_latest_small(spark):
    path = shared_data("ml-latest-small")
    ratings = load_ratings(spark, path).accepted
    embeddings = ItemEmbeddings.from_features(
        load_items(spark, path), 128, tags=load_tags(spark, path), seed=0
    )
    env = FrameEnv(embeddings, ratings, frame_size=10, batch_size=100, seed=0)

    raw = pd.read_csv(path / "ratings.csv")
    # The shared copy has one row with an unparseable timestamp, which load_ratings rejects.
    raw = raw[pd.to_numeric(raw.timestamp, errors="coerce").notna()].astype({"timestamp": "int64"})
    counts = raw.groupby("userId").size()
    kept = counts[counts >= 11]
    assert env.user_vocab.ids.tolist() == kept.index.tolist()
    assert env.excluded_users == len(counts) - len(kept) and env.dropped_ratings == 0
    assert len(env.test_users) == math.ceil(0.05 * len(kept))
    assert len(np.intersect1d(env.train_users, env.test_users)) == 0

    train, test = list(env.train_dataloader), list(env.test_dataloader)
    batch = train[0]
    assert batch["state"].shape[1] == 1290 and batch["next_state"].shape[1] == 1290
    assert batch["action"].shape[1] == 128 and batch["frame_items"].shape[1] == 10
    train_users = set(torch.cat([b["user"] for b in train]).tolist())
    test_users = set(torch.cat([b["user"] for b in test]).tolist())
    assert not train_users & test_users
    assert sum(len(b["reward"]) for b in train + test) == int((kept - 10).sum())

    # The first window of one user, from pandas and the embedding table directly.
    user = int(env.user_vocab.ids[env.train_users[0]])
    history = raw[raw.userId == user].sort_values(["timestamp", "movieId"])
    rows = embeddings.indices(history.movieId.to_numpy()[:11])
    expected = torch.cat(
        [embeddings.vectors[rows[:10]].flatten(), torch.tensor(2 * (history.rating.to_numpy()[:10] - 2.5))]
    ).float()
    got = next(b for b in train if (b["user"] == env.train_users[0]).any())
    first = int(torch.nonzero(got["user"] == env.train_users[0])[0])
    torch.testing.assert_close(got["state"][first], expected)
    torch.testing.assert_close(got["action"][first], embeddings.vectors[rows[10]])
