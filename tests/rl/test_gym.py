"""The MovieLens rating Gym: API conformance, observations checked by hand against the raw ml-100k files,
one test per flaw of the original Recommendation Gym, seeding, and the vector environment."""

from __future__ import annotations

import csv
import math
import warnings
from collections import defaultdict

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from conftest import shared_data
from gymnasium.utils.env_checker import check_env

from spark_recs.data.movielens import GENRES_100K
from spark_recs.rl.gym import (
    ENV_ID,
    OCCUPATIONS_100K,
    MovieLensRatingEnv,
    MovieLensRatingVecEnv,
    RatingData,
    reward,
)


@pytest.fixture(scope="module")
def ml100k():
    return shared_data("ml-100k")


@pytest.fixture(scope="module")
def fold1(ml100k) -> RatingData:
    return RatingData.load(ml100k, fold=1)


def _ratings(path) -> list[tuple[int, int, int, int]]:
    with open(path) as handle:
        return [tuple(int(v) for v in row) for row in csv.reader(handle, delimiter="\t")]


def _genres(ml100k) -> dict[int, list[int]]:
    """Genre flags by movie id, parsed from u.item independently of the package."""
    with open(ml100k / "u.item", encoding="ISO-8859-1") as handle:
        return {int(row[0]): [int(v) for v in row[5:]] for row in csv.reader(handle, delimiter="|")}


def _walk_until(env, seed, predicate, limit):
    observation, info = env.reset(seed=seed)
    for _ in range(limit):
        if predicate(info):
            return observation, info
        observation, _, _, _, info = env.step(info["rating"] - 1)
    raise AssertionError("row not reached")


def test_occupations_are_the_lines_of_u_occupation(ml100k):
    assert OCCUPATIONS_100K == (ml100k / "u.occupation").read_text().split()


def test_reward_values():
    assert reward(3, 3) == 1.0
    assert reward(4, 3) == pytest.approx(math.log(0.8))
    assert reward(1, 5) == pytest.approx(math.log(0.2))
    np.testing.assert_allclose(reward([1, 2, 5], [3, 2, 4]), [math.log(0.6), 1.0, math.log(0.8)])


def test_check_env_passes_without_warnings(ml100k):
    env = gym.make(ENV_ID, data_dir=ml100k, fold=1, episode_length=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught if "gymnasium" in w.filename] == []
    assert env.observation_space.shape == (51,) and env.action_space == gym.spaces.Discrete(5)


def test_observation_of_a_test_row_checked_by_hand(ml100k):
    """u1.test's first row: user 1 (24, M, technician) rates movie 6 (Drama); means from u1.base only."""
    base = _ratings(ml100k / "u1.base")
    user_mean = np.mean([r for u, _, r, _ in base if u == 1])
    movie_mean = np.mean([r for _, i, r, _ in base if i == 6])
    expected = np.zeros(51, np.float32)
    expected[0], expected[1] = user_mean / 5, movie_mean / 5
    expected[2:21] = _genres(ml100k)[6]
    assert expected[2 + 8] == 1  # Drama
    expected[21 + 1] = 1  # age 24: bucket "18-24"
    expected[28 + (ml100k / "u.occupation").read_text().split().index("technician")] = 1
    expected[49] = 1  # M
    env = MovieLensRatingEnv(ml100k, fold=1, part="test")
    observation, info = _walk_until(env, 0, lambda info: (info["user"], info["item"]) == (1, 6), 20_000)
    assert info["rating"] == 5
    np.testing.assert_allclose(observation, expected, rtol=1e-6)
    assert observation.dtype == np.float32


def test_means_come_from_the_training_fold_only(ml100k, fold1):
    """Fix 1: the original averaged over u.data (test rows included)."""
    base, everything = _ratings(ml100k / "u1.base"), _ratings(ml100k / "u.data")
    train_sum, train_n, all_sum, all_n = (defaultdict(float) for _ in range(4))
    for _, i, r, _ in base:
        train_sum[i], train_n[i] = train_sum[i] + r, train_n[i] + 1
    for _, i, r, _ in everything:
        all_sum[i], all_n[i] = all_sum[i] + r, all_n[i] + 1
    popular = [i for i in train_n if train_n[i] > 20]
    movie = max(popular, key=lambda i: abs(train_sum[i] / train_n[i] - all_sum[i] / all_n[i]))
    train_mean, full_mean = train_sum[movie] / train_n[movie], all_sum[movie] / all_n[movie]
    assert abs(train_mean - full_mean) > 0.1
    row = fold1.test.index[fold1.test["item"] == movie][0]
    observation = fold1.observations("test")[row]
    assert observation[1] == pytest.approx(train_mean / 5, rel=1e-6)
    # a movie that only u1.test rates falls back to the training mean
    unseen = sorted({i for _, i, _, _ in _ratings(ml100k / "u1.test")} - set(train_n))[0]
    row = fold1.test.index[fold1.test["item"] == unseen][0]
    global_mean = np.mean([r for *_, r, _ in base])
    assert fold1.observations("test")[row][1] == pytest.approx(global_mean / 5, rel=1e-6)


def test_each_action_is_scored_against_the_row_it_was_shown(fold1):
    """Fix 2: answering every shown row's true rating earns +1 each step (the original scored the next row)."""
    env = MovieLensRatingEnv(data=fold1, episode_length=300)
    _, info = env.reset(seed=5)
    shown, rewards = [], []
    for _ in range(300):
        shown.append(info["rating"])
        _, value, terminated, _, info = env.step(shown[-1] - 1)
        rewards.append(value)
        assert info["scored_rating"] == shown[-1]
    assert terminated and rewards == [1.0] * 300
    assert len(set(shown)) > 1  # consecutive rows differ, so scoring the next row would miss
    _, info = env.reset(seed=5)
    wrong = info["rating"] % 5  # the action for rating (r mod 5) + 1, never r
    assert env.step(wrong)[1] == pytest.approx(math.log(1 - abs(wrong + 1 - info["rating"]) / 5))


def test_genres_are_looked_up_by_movie_id(ml100k, fold1):
    """Fix 3: the original took the genres of the row position, i.e. of another movie."""
    genres = _genres(ml100k)
    assert genres[1] != genres[2]  # Toy Story vs GoldenEye
    env = MovieLensRatingEnv(data=fold1)
    observation, info = env.reset(seed=11)
    for _ in range(500):
        assert observation[2:21].tolist() == genres[info["item"]]
        observation, _, _, _, info = env.step(0)


def test_seeded_reset_is_deterministic(fold1):
    def walk(env, seed):
        observation, info = env.reset(seed=seed)
        seen = [(observation, info)]
        for _ in range(20):
            observation, _, _, _, info = env.step(3)
            seen.append((observation, info))
        return seen

    one, two = MovieLensRatingEnv(data=fold1), MovieLensRatingEnv(data=fold1)
    first, again = walk(one, 3), walk(two, 3)
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, again))
    assert [s[1]["item"] for s in walk(one, 4)] != [s[1]["item"] for s in first]
    assert one.reset()[1] != two.reset(seed=3)[1]  # without a seed the generator moves on


def test_an_episode_walks_distinct_rows_and_the_whole_part_by_default(fold1):
    env = MovieLensRatingEnv(data=fold1, part="test")
    _, info = env.reset(seed=1)
    pairs, terminated = [], False
    while not terminated:
        pairs.append((info["user"], info["item"]))
        _, _, terminated, _, info = env.step(0)
    assert sorted(pairs) == sorted(zip(fold1.test["user"], fold1.test["item"]))
    assert set(info) == {"scored_rating"}
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError, match="episode_length"):
        MovieLensRatingEnv(data=fold1, part="test", episode_length=20_001)


def test_vector_env_steps_all_walks_and_autoresets(fold1):
    envs = gym.make_vec(ENV_ID, num_envs=4, data=fold1, episode_length=3)
    assert isinstance(envs.unwrapped, MovieLensRatingVecEnv)
    observations, info = envs.reset(seed=2)
    assert observations.shape == (4, 51)
    np.testing.assert_array_equal(observations, fold1.observe(*_indices(fold1, info["user"], info["item"])))
    for step in range(3):
        observations, rewards, terminated, truncated, info = envs.step(info["rating"] - 1)
        np.testing.assert_array_equal(rewards, np.ones(4))
        assert terminated.tolist() == [step == 2] * 4 and not truncated.any()
    assert info["_final_obs"].all() and info["final_obs"].shape == (4, 51)
    np.testing.assert_array_equal(observations, fold1.observe(*_indices(fold1, info["user"], info["item"])))
    # Gymnasium's generic vectoriser over single environments works too
    sync = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", data=fold1, episode_length=3)
    assert sync.reset(seed=0)[0].shape == (2, 51)


def _indices(data: RatingData, users, items):
    return pd.Index(data.user_ids).get_indexer(users), pd.Index(data.item_ids).get_indexer(items)


def test_temporal_split_puts_the_latest_fifth_in_test(ml100k):
    data = RatingData.load(ml100k, split="temporal")
    assert (len(data.train), len(data.test)) == (80_000, 20_000)
    stamps = {(u, i): t for u, i, _, t in _ratings(ml100k / "u.data")}
    latest_train = max(stamps[p] for p in zip(data.train["user"], data.train["item"]))
    earliest_test = min(stamps[p] for p in zip(data.test["user"], data.test["item"]))
    assert latest_train <= earliest_test
    with pytest.raises(ValueError, match="takes no fold"):
        RatingData.load(ml100k, split="temporal", fold=2)
    with pytest.raises(ValueError, match="1..5"):
        RatingData.load(ml100k, fold=6)


def test_spark_connect_loads_the_same_data(connect_spark, ml100k, fold1):
    data = RatingData.load(ml100k, fold=1, spark=connect_spark)
    for part in ("train", "test"):
        pd.testing.assert_frame_equal(data.part(part), fold1.part(part))
    np.testing.assert_array_equal(data.user_ids, fold1.user_ids)
    np.testing.assert_array_equal(data.item_ids, fold1.item_ids)
    np.testing.assert_array_equal(data.user_features, fold1.user_features)
    np.testing.assert_array_equal(data.item_features, fold1.item_features)
    assert data.global_mean == fold1.global_mean


def test_only_an_ml_100k_folder_loads(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not an ml-100k folder"):
        RatingData.load(shared_data("ml-latest-small"))
    with pytest.raises(FileNotFoundError, match="is not an ml-100k folder"):
        RatingData.load(tmp_path / "missing")


def _tiny_frames():
    users = pd.DataFrame(
        {
            "user": [10, 20, 30],
            "age": [17, 18, 56],
            "gender": ["F", "M", "F"],
            "occupation": ["none", "artist", "writer"],
        }
    )
    items = pd.DataFrame({"item": [7, 8], **{genre: [0, 0] for genre in GENRES_100K}})
    items.loc[1, "Horror"] = 1
    train = pd.DataFrame({"user": [10, 10, 20], "item": [7, 8, 7], "rating": [5, 3, 1]})
    test = pd.DataFrame({"user": [30, 20], "item": [8, 8], "rating": [4, 2]})
    return train, test, users, items


def test_prebuilt_frames_with_fallbacks_and_buckets():
    data = RatingData.from_frames(*_tiny_frames())
    observations = data.observations("test")
    # user 30 has no training rows: the training mean, 3; movie 8's training mean is 3 too
    assert observations[0, 0] == pytest.approx(3 / 5) and observations[0, 1] == pytest.approx(3 / 5)
    assert observations[1, 0] == pytest.approx(1 / 5)  # user 20's only training rating
    assert observations[0, 2 + 11] == 1  # Horror
    assert np.flatnonzero(observations[0, 21:28]).tolist() == [6]  # age 56: "56 and over"
    assert data.observations("train")[:, 21:28].argmax(axis=1).tolist() == [0, 0, 1]  # 17 and 18
    assert observations[0, 49:].tolist() == [0, 1]


def test_bad_tables_are_refused_with_the_column_and_the_fix():
    train, test, users, items = _tiny_frames()
    with pytest.raises(ValueError, match=r"'occupation'.*u.occupation"):
        RatingData.from_frames(train, test, users.assign(occupation=["none", "artist", "pilot"]), items)
    with pytest.raises(ValueError, match=r"1 of 2 rows have a 'user' missing from the users table"):
        RatingData.from_frames(train, test.assign(user=[30, 99]), users, items)
    with pytest.raises(ValueError, match=r"needs column\(s\) \['rating'\]"):
        RatingData.from_frames(train.drop(columns="rating"), test, users, items)
    with pytest.raises(ValueError, match="whole stars"):
        RatingData.from_frames(train.assign(rating=[5, 3.5, 1]), test, users, items)


@pytest.mark.slow
def test_spark_loaded_tables_give_the_same_features(spark, ml100k, fold1):
    from spark_recs.data.movielens import load_items, load_users

    data = RatingData.from_frames(
        fold1.train, fold1.test, load_users(spark, ml100k), load_items(spark, ml100k)
    )
    order = np.argsort(data.user_ids)
    np.testing.assert_array_equal(data.user_features[order], fold1.user_features[np.argsort(fold1.user_ids)])
    order = np.argsort(data.item_ids)
    np.testing.assert_array_equal(data.item_features[order], fold1.item_features[np.argsort(fold1.item_ids)])
