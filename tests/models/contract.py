"""The contract every model meets, written once (LensKit's shared component tests): each model's case
inherits :class:`UserModelContract` or :class:`SessionModelContract` (tests/models/test_contract.py).

A case says how to build its model with parameters off their defaults (:meth:`ModelContract.make`) and
how to fit it on the suite's tiny hand-made data (:meth:`ModelContract.fit`); a user model also says what
an unknown user and an unknown item get: its documented fallback, or no score (NaN). The suite checks
the parameter round trip, the saved file (path and bytes, weights only, pickles refused), unknown ids,
empty input, and that batch scoring over Spark (both engines) gives exactly the in-process numbers.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from spark_recs import batch
from spark_recs.models.base import BUILTIN_KINDS, MODEL_FORMAT, Model, model_kind
from spark_recs.models.topn import recommend_frame, top_k

# ---- data: 12 users rating 2 to 5 of 10 items, sessions over the same 10 items -----------------------

ITEMS = [f"i{i}" for i in range(10)]
RATINGS = pd.DataFrame(
    [
        (user, ITEMS[(3 * user + 2 * k) % 10], float(1 + (user + 2 * k) % 5), 10 * user + k)
        for user in range(1, 13)
        for k in range(2 + user % 4)
    ],
    columns=["user", "item", "rating", "timestamp"],
)
USERS = sorted(RATINGS["user"].unique().tolist())
UNKNOWN_USER, UNKNOWN_ITEM = 999, "nope"

# Training sessions (item numbers 0..9; a case maps them to its raw ids), in time order.
TRAIN_SESSIONS = [[(s + 3 * p) % 10 for p in range(2 + s % 4)] for s in range(12)]
# Sessions to score: 10 and -1 are unknown items, session "c" has no known item at all.
SCORE_SESSIONS = {"a": [3, 4, 10, 5], "b": [7], "c": [10], "d": [1, 1, 2], "e": [9, 0, 8, 2, 6], "f": [-1, 2]}
SESSION_COLUMNS = ["SessionId", "position", "rank", "item", "score"]


def events(sessions: dict | list, raw) -> pd.DataFrame:
    """``SessionId, ItemId, Time`` rows of ``sessions`` (item numbers mapped by ``raw``), last row first:
    whoever reads them must order them by time."""
    named = sessions.items() if isinstance(sessions, dict) else enumerate(sessions)
    rows = [
        (s, raw(item), 100.0 * k + t) for k, (s, items) in enumerate(named) for t, item in enumerate(items)
    ]
    return pd.DataFrame(rows[::-1], columns=["SessionId", "ItemId", "Time"])


def assert_same_frame(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Equal rows after sorting both by ``keys``: every value exactly, column order too."""
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        got.sort_values(keys).reset_index(drop=True),
        expected.sort_values(keys).reset_index(drop=True),
        check_dtype=False,
        check_exact=True,
    )


def assert_only_plain_values(value, where: str = "the file") -> None:
    """A saved model holds tensors, strings and numbers (in dicts and lists) only."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where} has a key {key!r}"
            assert_only_plain_values(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            assert_only_plain_values(item, f"{where}[{k}]")
    else:
        assert isinstance(value, (torch.Tensor, str, int, float, bool)), f"{where} is {type(value)}"


class Opaque:
    """An object only pickle can store; unpickling it would write ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


@pytest.mark.usefixtures("one_torch_thread")
class ModelContract:
    """Checks every model class passes: parameters, the saved file, empty training data."""

    #: The model class and the parameters a case builds it with: each off its default.
    model_class: type[Model]
    params: dict = {}
    #: The family's training data.
    train: pd.DataFrame

    def make(self) -> Model:
        """An unfitted model with the case's parameters."""
        return self.model_class(**self.params)

    def fit(self, model: Model, data: pd.DataFrame) -> Model:
        """``model`` fitted on ``data`` (this family's training frame)."""
        raise NotImplementedError

    def assert_same_scores(self, got: Model, expected: Model) -> None:
        """``got`` scores exactly as ``expected`` does."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> Model:
        """The case's model fitted once per case (one torch thread: tiny tensors)."""
        case, previous = cls(), torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return case.fit(case.make(), case.train)
        finally:
            torch.set_num_threads(previous)

    # ---- parameters ---------------------------------------------------------------------------------

    def test_params_rebuild_an_equal_model(self):
        model, defaults = self.make(), self.model_class().get_params()
        params = model.get_params()
        assert set(params) == set(defaults) and (self.params or not params)  # a case sets some parameters
        for name, value in self.params.items():
            assert params[name] == value and value != defaults[name], name
        assert type(model)(**params).get_params() == params
        fresh = type(model)()
        assert fresh.set_params(**params) is fresh and fresh.get_params() == params

    def test_unknown_params_are_refused_by_name(self):
        with pytest.raises(ValueError, match="no_such_parameter") as refused:
            self.make().set_params(no_such_parameter=1)
        assert "\n" not in str(refused.value)

    def test_fitting_keeps_the_params(self, fitted):
        assert fitted.get_params() == self.make().get_params()

    def test_the_saved_config_rebuilds_an_equal_model(self, fitted, tmp_path):
        content = torch.load(fitted.save(tmp_path / "model.pt"), weights_only=True)
        config = json.loads(content["config"])
        assert type(fitted)(**config).get_params() == fitted.get_params()

    # ---- the saved file -----------------------------------------------------------------------------

    def assert_same_model(self, got: Model, expected: Model) -> None:
        assert type(got) is type(expected) and got.get_params() == expected.get_params()
        for vocabulary in ("user_vocab", "item_vocab"):
            if hasattr(expected, vocabulary):
                assert getattr(got, vocabulary).ids.tolist() == getattr(expected, vocabulary).ids.tolist()
        self.assert_same_scores(got, expected)

    def test_save_and_load_through_a_file(self, fitted, tmp_path):
        path = fitted.save(tmp_path / "model.pt")
        self.assert_same_model(Model.load(path), fitted)
        self.assert_same_model(type(fitted).load(path), fitted)

    def test_save_and_load_through_bytes(self, fitted):
        self.assert_same_model(fitted.payload().restore(), fitted)

    def test_the_file_is_weights_only(self, fitted, tmp_path):
        content = torch.load(fitted.save(tmp_path / "model.pt"), weights_only=True)
        assert content["format"] == MODEL_FORMAT
        assert content["kind"] == model_kind(type(fitted)) and content["kind"] in BUILTIN_KINDS
        assert_only_plain_values(content)

    def test_a_file_holding_pickled_objects_is_refused(self, fitted, tmp_path):
        marker = tmp_path / "unpickled.txt"
        content = torch.load(fitted.save(tmp_path / "model.pt"), weights_only=True)
        content["state"]["extra"] = Opaque(marker)
        torch.save(content, tmp_path / "objects.pt")
        (tmp_path / "pickle.pkl").write_bytes(pickle.dumps({"model": fitted, "extra": Opaque(marker)}))
        for name in ("objects.pt", "pickle.pkl"):
            with pytest.raises(ValueError, match="holds Python objects other than tensors") as refused:
                type(fitted).load(tmp_path / name)
            assert "\n" not in str(refused.value)
        assert not marker.exists()

    def test_an_unfitted_model_is_not_saved(self, tmp_path):
        with pytest.raises(RuntimeError, match="not (fitted|trained)"):
            self.make().save(tmp_path / "model.pt")
        assert not (tmp_path / "model.pt").exists()

    # ---- empty input --------------------------------------------------------------------------------

    def test_fitting_no_data_is_a_one_line_error(self):
        with pytest.raises(ValueError, match="empty") as refused:
            self.fit(self.make(), self.train.iloc[:0])
        assert "\n" not in str(refused.value)


class UserModelContract(ModelContract):
    """A :class:`~spark_recs.models.base.Recommender`: scores users, fitted on ``user, item, rating``."""

    train = RATINGS

    def fit(self, model, data):
        return model.fit(data)

    def unknown_user_scores(self, model) -> np.ndarray | None:
        """What an unknown user scores on every item (the model's fallback); None: no scores (NaN)."""
        return None

    def unknown_item_predictions(self, model, users: np.ndarray) -> np.ndarray | None:
        """What known ``users`` (indices) get for an unknown item; None: no prediction (NaN)."""
        return None

    @staticmethod
    def all_pairs(model) -> tuple[np.ndarray, np.ndarray]:
        """Every (user, item) index pair, unknown user (-1) and unknown item (-1) included."""
        users, items = np.arange(-1, len(model.user_vocab)), np.arange(-1, model.n_items)
        return np.repeat(users, len(items)), np.tile(items, len(users))

    def assert_same_scores(self, got, expected):
        users = np.arange(-1, len(expected.user_vocab))
        torch.testing.assert_close(
            got.score_users(users), expected.score_users(users), rtol=0, atol=0, equal_nan=True
        )
        pairs = self.all_pairs(expected)
        np.testing.assert_array_equal(got.predict_pairs(*pairs), expected.predict_pairs(*pairs))
        everyone = np.array([*USERS, UNKNOWN_USER])
        assert_same_frame(
            recommend_frame(got, everyone, 3), recommend_frame(expected, everyone, 3), ["user", "rank"]
        )

    # ---- unknown ids --------------------------------------------------------------------------------

    def test_an_unknown_user_gets_the_documented_fallback_or_nothing(self, fitted):
        scores = fitted.score_users(np.array([-1]))[0].numpy()
        expected = self.unknown_user_scores(fitted)
        recs = fitted.recommend(UNKNOWN_USER, n=None)
        predicted = fitted.predict_for_user(UNKNOWN_USER, ITEMS)
        assert list(recs.columns) == ["item", "score"]
        if expected is None:
            assert np.isnan(scores).all() and recs.empty and predicted.isna().all()
            return
        np.testing.assert_allclose(scores, expected, rtol=1e-6)
        # Nothing to exclude: every item, by score, ties to the lower id.
        ids = fitted.item_vocab.ids
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
        assert recs["item"].tolist() == ids[order].tolist()
        np.testing.assert_array_equal(recs["score"].to_numpy(), scores[order])
        np.testing.assert_allclose(
            predicted.to_numpy(), expected[fitted.item_vocab.indices(ITEMS)], rtol=1e-6
        )

    def test_an_unknown_item_gets_the_documented_fallback_or_nothing(self, fitted):
        users = fitted.user_vocab.indices(USERS)
        got = fitted.predict_pairs(users, np.full(len(users), -1))
        expected = self.unknown_item_predictions(fitted, users)
        if expected is None:
            assert np.isnan(got).all()
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-6)
        by_id = np.array([fitted.predict_for_user(user, [UNKNOWN_ITEM]).iloc[0] for user in USERS])
        np.testing.assert_array_equal(by_id, got)
        # Unknown candidates are ignored.
        user = max(USERS, key=lambda u: len(fitted.recommend(u, n=None, candidates=ITEMS)))
        chosen = fitted.recommend(user, n=None, candidates=[*ITEMS[:6], UNKNOWN_ITEM])
        assert not chosen.empty
        pd.testing.assert_frame_equal(chosen, fitted.recommend(user, n=None, candidates=ITEMS[:6]))

    def test_recommend_ranks_the_users_unrated_items_by_score(self, fitted):
        listed = 0
        for user in USERS:
            scores = fitted.score_users(fitted.user_vocab.indices([user]))[0].numpy()
            rated = set(RATINGS.loc[RATINGS["user"] == user, "item"])
            ids = fitted.item_vocab.ids
            order = sorted(
                (i for i in range(len(ids)) if ids[i] not in rated and not np.isnan(scores[i])),
                key=lambda i: (-scores[i], ids[i]),
            )
            recs = fitted.recommend(user, n=None)
            assert recs["item"].tolist() == ids[order].tolist(), user
            np.testing.assert_array_equal(recs["score"].to_numpy(), scores[order])
            assert fitted.recommend(user, n=2).equals(recs.head(2))
            listed += len(recs)
        assert listed > len(USERS)  # not vacuous

    # ---- empty input --------------------------------------------------------------------------------

    def test_no_users_and_no_pairs_give_empty_results(self, fitted):
        recs = recommend_frame(fitted, np.array([], dtype=np.int64), 3)
        assert recs.empty and list(recs.columns) == ["user", "rank", "item", "score"]
        assert fitted.predict_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0,)
        assert fitted.predict_for_user(USERS[0], []).empty

    def test_batch_with_no_users_and_no_pairs_gives_empty_frames(self, fitted, any_spark):
        recs = batch.recommend(fitted, [], 3, spark=any_spark)
        assert recs.columns == ["user", "rank", "item", "score"] and recs.count() == 0
        pairs = any_spark.createDataFrame([], "user long, item string, rating double")
        predicted = batch.predict(fitted, pairs)
        assert predicted.columns == ["user", "item", "rating", "prediction"] and predicted.count() == 0

    # ---- batch over Spark = in-process --------------------------------------------------------------
    # One user (one pair) per scoring call on the workers, as in-process here: a batched matrix product
    # may round differently with the number of rows (tests/test_batch.py bounds that on real data).

    @staticmethod
    def recommended(model, users: list, n: int | None, candidates: dict | None = None) -> pd.DataFrame:
        """``user, rank, item, score`` from ``model.recommend`` for each user (candidates: per user)."""
        lists = [
            model.recommend(user, n, None if candidates is None else candidates.get(user, ()))
            for user in users
        ]
        return pd.concat(
            [recs.assign(user=user, rank=np.arange(1, len(recs) + 1)) for user, recs in zip(users, lists)],
            ignore_index=True,
        )[["user", "rank", "item", "score"]]

    def test_batch_recommend_equals_in_process(self, fitted, any_spark):
        users = [*USERS, UNKNOWN_USER]
        # A duplicate user is recommended once.
        got = batch.recommend(fitted, [*users, USERS[0]], 3, spark=any_spark, batch_size=1).toPandas()
        assert_same_frame(got, self.recommended(fitted, users, 3), ["user", "rank"])
        # Every candidate of explicit lists: an unknown item among them, no list for the last two users.
        chosen = {user: ITEMS[user % 3 :: 2] + [UNKNOWN_ITEM] for user in users[:-2]}
        pairs = pd.DataFrame([(u, i) for u, items in chosen.items() for i in items], columns=["user", "item"])
        candidates = any_spark.createDataFrame(pairs)
        got = batch.recommend(fitted, users, None, candidates, spark=any_spark, batch_size=1).toPandas()
        expected = self.recommended(fitted, users, None, chosen)
        assert_same_frame(got, expected, ["user", "rank"])
        assert len(expected) > len(USERS)  # not vacuous

    def test_batch_predict_equals_in_process(self, fitted, any_spark):
        users, items = self.all_pairs(fitted)
        pairs = pd.DataFrame(
            {
                "user": np.array([*fitted.user_vocab.ids, UNKNOWN_USER])[users],
                "item": np.array([*fitted.item_vocab.ids, UNKNOWN_ITEM], dtype=object)[items],
                "rating": np.arange(len(users)) / 4.0,
            }
        )
        got = batch.predict(fitted, pairs, spark=any_spark, batch_size=1).toPandas()
        expected = pairs.assign(
            prediction=[fitted.predict_for_user(u, [i]).iloc[0] for u, i in zip(pairs["user"], pairs["item"])]
        )
        assert_same_frame(got, expected, ["user", "item"])
        assert expected["prediction"].notna().sum() > len(USERS)  # not vacuous


class SessionModelContract(ModelContract):
    """A session model: ``score_sessions`` over item-index sequences, fitted on ``SessionId, ItemId, Time``."""

    @staticmethod
    def raw(item: int):
        """The raw id this case gives item number ``item`` (its model's item ids)."""
        return item

    @property
    def train(self) -> pd.DataFrame:
        return events(TRAIN_SESSIONS, self.raw).iloc[::-1].reset_index(drop=True)

    def assert_same_scores(self, got, expected):
        sessions = [self.indices(expected, s) for s in TRAIN_SESSIONS]
        for every_prefix in (False, True):
            torch.testing.assert_close(
                got.score_sessions(sessions, every_prefix=every_prefix),
                expected.score_sessions(sessions, every_prefix=every_prefix),
                rtol=0,
                atol=0,
            )

    def indices(self, model, items: list[int]) -> np.ndarray:
        """The known item indices of items numbered ``items``, in order."""
        raw = np.array([self.raw(i) for i in items])
        vocabulary = getattr(model, "item_vocab", None)
        found = vocabulary.indices(raw) if vocabulary is not None else raw.astype(np.int64)
        return found[(found >= 0) & (found < model.n_items)]

    def in_process(self, model, n: int | None, every_prefix: bool) -> pd.DataFrame:
        """What ``recommend_sessions`` documents, one session per call: the top ``n`` after each session's
        known items (or after each of them), ties to the lower index; sessions without a known item left out."""
        frames = []
        ids = getattr(model, "item_vocab", None)
        for session, items in SCORE_SESSIONS.items():
            known = self.indices(model, items)
            if not len(known):
                continue
            positions = np.arange(1, len(known) + 1) if every_prefix else [len(known)]
            scored = model.score_sessions([known], every_prefix=every_prefix)
            top, scores = top_k(scored, model.n_items if n is None else n)
            width = top.shape[1]
            frames.append(
                pd.DataFrame(
                    {
                        "SessionId": session,
                        "position": np.repeat(positions, width).astype(np.int32),
                        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), len(positions)),
                        "item": top.reshape(-1).numpy() if ids is None else ids.ids[top.reshape(-1).numpy()],
                        "score": scores.reshape(-1).numpy(),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def test_no_sessions_give_no_scores(self, fitted, any_spark):
        for every_prefix in (False, True):
            assert fitted.score_sessions([], every_prefix=every_prefix).shape == (0, fitted.n_items)
        none = any_spark.createDataFrame(self.train).limit(0)
        recs = batch.recommend_sessions(fitted, none, 3)
        assert recs.columns == SESSION_COLUMNS and recs.count() == 0

    @pytest.mark.parametrize("n, every_prefix", [(3, False), (None, True)])
    def test_batch_recommend_sessions_equals_in_process(self, fitted, any_spark, n, every_prefix):
        frame = any_spark.createDataFrame(events(SCORE_SESSIONS, self.raw))
        got = batch.recommend_sessions(fitted, frame, n, every_prefix, batch_size=1).toPandas()
        expected = self.in_process(fitted, n, every_prefix)
        assert_same_frame(got, expected, ["SessionId", "position", "rank"])
        assert set(expected["SessionId"]) == set(SCORE_SESSIONS) - {"c"}
