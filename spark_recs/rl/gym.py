"""MovieLens 100k rating prediction as a Gymnasium environment (the Recommendation Gym, its flaws fixed).

Each step shows one (user, movie) rating row as 51 features; the agent answers a rating: action ``a`` of
``Discrete(5)`` means rating ``a + 1``. The reward is +1 for the exact rating, else
``log(1 - |error| / 5)`` (-0.22, -0.51, -0.92, -1.61 for errors 1 to 4). Rows are independent, so with
discount 0 this is a contextual bandit.

Observation (float32, every value in [0, 1]):

=======  ===========================================================================================
0        the user's mean rating / 5 over the training rows (the training mean for a user without any)
1        the movie's mean rating / 5 over the training rows (same fallback)
2-20     the movie's 19 genre flags (``GENRES_100K`` order), looked up by movie id
21-27    age bucket: under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56 and over (MovieLens 1M's groups)
28-48    occupation, one flag per line of ``u.occupation`` (``OCCUPATIONS_100K``)
49-50    gender M, F
=======  ===========================================================================================

Splits: the official folds (``fold=1..5``: ``uN.base`` to train, ``uN.test`` to test) or
``split="temporal"`` (all rows ordered by time, the first 80% to train, the rest to test). An episode walks
``episode_length`` distinct rows of one part (``part="train"`` or ``"test"``; all of them when
``episode_length`` is None) in an order drawn from the seed given to ``reset``. ``info`` holds the shown
row's ``user``, ``item`` and true ``rating``; a step's ``info`` also holds ``scored_rating``, the true
rating of the row its action was scored against (the row shown before the step). The episode terminates
after its last row; that step returns the last row's observation again and only ``scored_rating``.

Flaws of the original fixed here: the means come from the training part only (the original averaged the
whole data set, test rows included); each action is scored against the row it was shown (the original
scored it against the next row); genres are looked up by movie id (the original used the row position).

``gym.make(ENV_ID, data_dir=..., fold=1)`` builds one environment; ``gym.make_vec(ENV_ID, num_envs=n,
...)`` builds :class:`MovieLensRatingVecEnv`, which steps all ``n`` walks at once in NumPy. Both load the
folder with Spark through the data layer (:meth:`RatingData.load`) and hold compact NumPy arrays, or take a
prebuilt :class:`RatingData` (``data=``), e.g. from other frames through :meth:`RatingData.from_frames`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from pyspark.sql import SparkSession

from spark_recs.data.movielens import GENRES_100K, load_items, load_users, movielens_layout
from spark_recs.data.sources import is_movielens, read_ratings
from spark_recs.runtime import get_spark

ENV_ID = "spark_recs/MovieLensRating-v0"
OCCUPATIONS_100K = [
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
]  # fmt: skip
#: Lower bounds of age buckets 1..6; bucket 0 is "under 18".
AGE_BOUNDS = (18, 25, 35, 45, 50, 56)
GENDERS = ("M", "F")
N_FEATURES = 2 + len(GENRES_100K) + len(AGE_BOUNDS) + 1 + len(OCCUPATIONS_100K) + len(GENDERS)
RATINGS = (1, 2, 3, 4, 5)
SPLITS = ("fold", "temporal")
PARTS = ("train", "test")
TEMPORAL_TEST_FRACTION = 0.2


def reward(predicted, actual) -> np.ndarray:
    """+1 where ``predicted == actual``, else ``log(1 - |predicted - actual| / 5)`` (elementwise, float64)."""
    error = np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64))
    return np.where(error == 0, 1.0, np.log1p(-error / 5))


def _pandas(frame, what: str) -> pd.DataFrame:
    frame = frame.toPandas() if hasattr(frame, "toPandas") else frame
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas (or Spark) DataFrame, got {type(frame).__name__}")
    return frame


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; it has {list(frame.columns)}")


def _check_values(frame: pd.DataFrame, column: str, allowed, what: str, fix: str) -> None:
    bad = int((~frame[column].isin(allowed)).sum())
    if bad:
        raise ValueError(
            f"{what}: {bad} of {len(frame)} rows have a {column!r} outside {list(allowed)}: {fix}"
        )


@dataclass(frozen=True, eq=False)
class RatingData:
    """One split's rows and the feature tables that turn a (user, movie) pair into an observation.

    ``train``/``test``: ``user, item, rating`` plus ``u``/``i``, the row's user and movie index into
    ``user_ids``/``item_ids``. ``user_features``: float32 ``(users, 31)`` = mean / 5, age bucket (7),
    occupation (21), gender (2); ``item_features``: float32 ``(items, 20)`` = mean / 5, genres (19).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_features: np.ndarray
    item_features: np.ndarray
    global_mean: float

    @classmethod
    def load(
        cls,
        data_dir: str | Path,
        *,
        fold: int | None = None,
        split: str | None = None,
        spark: SparkSession | None = None,
    ) -> RatingData:
        """Load an ml-100k folder with Spark (default :func:`~spark_recs.runtime.get_spark`) through the data
        layer's MovieLens loader: ``fold`` 1..5 (default 1) or ``split="temporal"``.

        Fold rows come in (user, item) order, the order of the official ``uN.base``/``uN.test`` files.
        """
        split, fold = check_split(fold, split)
        source = str(data_dir)
        if not is_movielens(source) or movielens_layout(source) != "100k":
            raise FileNotFoundError(
                f"{source} is not an ml-100k folder (no u.data): pass data_dir=<ml-100k folder>"
            )
        spark = spark or get_spark()

        def ratings(file: str, order: list[str]) -> pd.DataFrame:
            rows = read_ratings(spark, source, "data_dir", file=file).accepted
            return rows.orderBy(*order).toPandas()

        if split == "temporal":
            rows = ratings("u.data", ["timestamp", "user", "item"])
            cut = round(len(rows) * (1 - TEMPORAL_TEST_FRACTION))
            train, test = rows.iloc[:cut], rows.iloc[cut:]
        else:
            train, test = (ratings(f"u{fold}.{part}", ["user", "item"]) for part in ("base", "test"))
        users = load_users(spark, source).orderBy("user")
        items = load_items(spark, source).orderBy("item")
        return cls.from_frames(train, test, users, items)

    @classmethod
    def from_frames(cls, train, test, users, items) -> RatingData:
        """Build from tables shaped like the data layer's (pandas, or Spark frames, which are collected).

        ``train``/``test``: ``user, item, rating`` (integers 1..5); ``users``: ``user, age, gender,
        occupation`` (as :func:`~spark_recs.data.movielens.load_users`); ``items``: ``item`` and one 0/1
        column per genre of ``GENRES_100K`` (as :func:`~spark_recs.data.movielens.load_items`). Every rated
        user and item must be in ``users`` and ``items``. Means come from ``train`` only.
        """
        users, items = _pandas(users, "users"), _pandas(items, "items")
        _require(users, ["user", "age", "gender", "occupation"], "users")
        _require(items, ["item", *GENRES_100K], "items")
        for frame, key, what in ((users, "user", "users"), (items, "item", "items")):
            duplicated = int(frame[key].duplicated().sum())
            if duplicated:
                raise ValueError(
                    f"{what}: {duplicated} of {len(frame)} rows repeat a {key!r}: keep one row per id"
                )
        _check_values(users, "gender", GENDERS, "users", "ml-100k genders are M and F")
        _check_values(users, "occupation", OCCUPATIONS_100K, "users", "use ml-100k's u.occupation names")
        ages = pd.to_numeric(users["age"], errors="coerce")
        if ages.isna().any():
            raise ValueError(f"users: {int(ages.isna().sum())} of {len(users)} rows have no numeric 'age'")
        user_ids, item_ids = users["user"].to_numpy(), items["item"].to_numpy()
        train, test = (
            _indexed(frame, name, user_ids, item_ids) for frame, name in ((train, "train"), (test, "test"))
        )
        global_mean = float(train["rating"].mean())
        user_mean = _means(train["u"].to_numpy(), train["rating"].to_numpy(), len(user_ids), global_mean)
        item_mean = _means(train["i"].to_numpy(), train["rating"].to_numpy(), len(item_ids), global_mean)
        user_features = np.hstack(
            [
                user_mean[:, None] / 5,
                _one_hot(np.searchsorted(AGE_BOUNDS, ages.to_numpy(), side="right"), len(AGE_BOUNDS) + 1),
                _one_hot(pd.Index(OCCUPATIONS_100K).get_indexer(users["occupation"]), len(OCCUPATIONS_100K)),
                _one_hot(pd.Index(GENDERS).get_indexer(users["gender"]), len(GENDERS)),
            ]
        ).astype(np.float32)
        genres = items[GENRES_100K].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        not_flags = int((~np.isin(genres, (0, 1))).sum())
        if not_flags:
            raise ValueError(f"items: {not_flags} genre values are not 0 or 1: pass the u.item genre flags")
        item_features = np.column_stack([item_mean / 5, genres]).astype(np.float32)
        return cls(train, test, user_ids, item_ids, user_features, item_features, global_mean)

    def part(self, name: str) -> pd.DataFrame:
        """The ``train`` or ``test`` rows."""
        if name not in PARTS:
            raise ValueError(f"part must be one of {list(PARTS)}, got {name!r}")
        return self.train if name == "train" else self.test

    def observe(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """float32 observations ``(len(u), 51)`` for user indices ``u`` and movie indices ``i``."""
        users, movies = self.user_features[u], self.item_features[i]
        return np.concatenate([users[..., :1], movies, users[..., 1:]], axis=-1)

    def observations(self, part: str) -> np.ndarray:
        """The observations of every row of ``part``, in row order."""
        rows = self.part(part)
        return self.observe(rows["u"].to_numpy(), rows["i"].to_numpy())


def _indexed(frame, name: str, user_ids: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
    """``user, item, rating`` of a ratings table, checked, with ``u``/``i``: indices into the id arrays."""
    frame = _pandas(frame, name)
    _require(frame, ["user", "item", "rating"], name)
    if frame.empty:
        raise ValueError(f"the {name} ratings are empty: check the split")
    _check_values(frame, "rating", RATINGS, name, "ratings must be whole stars 1..5")
    rows = pd.DataFrame(
        {
            "user": frame["user"].to_numpy(),
            "item": frame["item"].to_numpy(),
            "rating": frame["rating"].to_numpy().astype(np.int64),
            "u": pd.Index(user_ids).get_indexer(frame["user"]),
            "i": pd.Index(item_ids).get_indexer(frame["item"]),
        }
    )
    for index, key, table in (("u", "user", "users"), ("i", "item", "items")):
        unknown = int((rows[index] < 0).sum())
        if unknown:
            raise ValueError(
                f"{name}: {unknown} of {len(rows)} rows have a {key!r} missing from the {table} table: "
                f"pass the full {table} table"
            )
    return rows


def _one_hot(index: np.ndarray, size: int) -> np.ndarray:
    return np.eye(size, dtype=np.float32)[index]


def _means(index: np.ndarray, values: np.ndarray, size: int, fallback: float) -> np.ndarray:
    counts = np.bincount(index, minlength=size)
    sums = np.bincount(index, weights=values.astype(np.float64), minlength=size)
    return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


def check_split(fold: int | None, split: str | None) -> tuple[str, int | None]:
    """``(split, fold)`` validated: ``("fold", 1..5)`` (fold 1 by default) or ``("temporal", None)``."""
    split = split or "fold"
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if split == "temporal":
        if fold is not None:
            raise ValueError(f"split='temporal' takes no fold (got fold={fold}): drop one of them")
        return split, None
    fold = 1 if fold is None else fold
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= 5:
        raise ValueError(f"fold must be one of the official ml-100k folds 1..5, got {fold!r}")
    return split, int(fold)


class _Walks:
    """The rows of one part and the seeded random walks over them, shared by both environment classes:
    from ``data`` (a :class:`RatingData`) or else loaded from ``data_dir`` with ``fold``/``split``."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        fold: int | None = None,
        split: str | None = None,
        part: str = "train",
        episode_length: int | None = None,
        data: RatingData | None = None,
    ) -> None:
        if data is not None:
            if data_dir is not None or fold is not None or split is not None:
                raise ValueError("pass either data=RatingData or data_dir (with fold/split), not both")
        elif data_dir is None:
            raise ValueError("pass data_dir=<ml-100k folder> (or data=RatingData.from_frames(...))")
        else:
            data = RatingData.load(data_dir, fold=fold, split=split)
        rows = data.part(part)
        self.data = data
        self.u, self.i = rows["u"].to_numpy(), rows["i"].to_numpy()
        self.ratings = rows["rating"].to_numpy()
        self.users, self.items = rows["user"].to_numpy(), rows["item"].to_numpy()
        if episode_length is not None and not (
            isinstance(episode_length, (int, np.integer)) and 1 <= episode_length <= len(rows)
        ):
            raise ValueError(
                f"episode_length must be None (every row) or 1..{len(rows)} (the {part} rows), got {episode_length!r}"
            )
        self.length = len(rows) if episode_length is None else int(episode_length)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Row positions of one walk: ``length`` distinct rows in random order."""
        if self.length == len(self.ratings):
            return rng.permutation(self.length)
        return rng.choice(len(self.ratings), size=self.length, replace=False)

    def observe(self, rows: np.ndarray) -> np.ndarray:
        return self.data.observe(self.u[rows], self.i[rows])

    def info(self, rows) -> dict:
        return {"user": self.users[rows], "item": self.items[rows], "rating": self.ratings[rows]}


def _spaces() -> tuple[spaces.Box, spaces.Discrete]:
    """One walk's observation and action spaces."""
    return spaces.Box(0.0, 1.0, (N_FEATURES,), np.float32), spaces.Discrete(len(RATINGS))


class MovieLensRatingEnv(gym.Env):
    """One walk over the rows of a split's ``part`` (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, data_dir: str | Path | None = None, **walks) -> None:
        """``walks``: ``fold``, ``split``, ``part``, ``episode_length``, ``data`` (see the module docstring)."""
        self._walks = _Walks(data_dir, **walks)
        self.data = self._walks.data
        self.observation_space, self.action_space = _spaces()
        self._order: np.ndarray | None = None
        self._position = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._order, self._position = self._walks.draw(self.np_random), 0
        return self._shown()

    def step(self, action):
        if self._order is None or self._position >= len(self._order):
            raise RuntimeError("the episode is over (or never started): call reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer 0..4 (rating - 1), got {action!r}")
        row = self._order[self._position]
        scored = int(self._walks.ratings[row])
        value = float(reward(int(action) + 1, scored))
        self._position += 1
        if self._position == len(self._order):
            return self._walks.observe(np.array([row]))[0], value, True, False, {"scored_rating": scored}
        observation, info = self._shown()
        return observation, value, False, False, {**info, "scored_rating": scored}

    def _shown(self) -> tuple[np.ndarray, dict]:
        """The observation and ``info`` of the row at the current position."""
        row = self._order[self._position]
        info = {key: int(value) for key, value in self._walks.info(row).items()}
        return self._walks.observe(np.array([row]))[0], info


class MovieLensRatingVecEnv(VectorEnv):
    """``num_envs`` independent walks stepped together in NumPy, with same-step autoreset.

    A walk that ends is redrawn in the same step: the returned observation is the new walk's first, its
    last observation is in ``info["final_obs"]`` (``info["_final_obs"]`` marks which). All walks have the
    same length, so they end together. ``info`` keys hold one value per walk, as in :class:`MovieLensRatingEnv`.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, data_dir: str | Path | None = None, **walks) -> None:
        """``walks`` as :class:`MovieLensRatingEnv`'s."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self._walks = _Walks(data_dir, **walks)
        self.data = self._walks.data
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._orders: np.ndarray | None = None
        self._position = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        self._orders = np.stack([self._walks.draw(self.np_random) for _ in range(self.num_envs)])
        self._position = 0
        rows = self._orders[:, 0]
        return self._walks.observe(rows), self._walks.info(rows)

    def step(self, actions):
        if self._orders is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.isin(actions, np.arange(len(RATINGS))).all():
            raise ValueError(f"actions must be {self.num_envs} integers 0..4 (rating - 1), got {actions!r}")
        rows = self._orders[:, self._position]
        scored = self._walks.ratings[rows]
        rewards = reward(actions + 1, scored)
        self._position += 1
        done = self._position == self._orders.shape[1]
        infos: dict = {}
        if done:
            final_obs = self._walks.observe(rows)
            observations, infos = self.reset()
            infos.update(final_obs=final_obs, _final_obs=np.ones(self.num_envs, bool))
        else:
            next_rows = self._orders[:, self._position]
            observations, infos = self._walks.observe(next_rows), self._walks.info(next_rows)
        infos["scored_rating"] = scored
        flags = np.full(self.num_envs, done)
        return observations, rewards, flags, np.zeros(self.num_envs, bool), infos


gym.register(
    id=ENV_ID,
    entry_point="spark_recs.rl.gym:MovieLensRatingEnv",
    vector_entry_point="spark_recs.rl.gym:MovieLensRatingVecEnv",
)
