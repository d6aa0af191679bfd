"""The contract every model meets, so one batch mechanism and one registry path serve them all.

A fitted model is saved as one file: ``torch.save`` of ``{format, kind, config, state}`` where ``kind`` is
the ``module:Class`` of a :class:`Model` subclass, ``config`` its parameters as JSON and ``state`` a dict
of tensors, strings and numbers. It is read with ``weights_only=True``: loading never runs pickled code.
Nor does it import what a file names: ``kind`` must be a built-in model (:data:`BUILTIN_KINDS`, whose
module is imported on demand) or a subclass already defined in this process (every subclass registers
itself). The same bytes travel to Spark workers as a :class:`Payload`.

Two families:

- session models implement ``score_sessions(sessions, every_prefix)`` over item-index sequences;
- user models derive from :class:`Recommender` and implement ``score_users``.

A model with an ``item_vocab`` (:class:`~spark_recs.models.vocabulary.Vocabulary`) takes and returns raw item
ids; one without works on dense item indices directly.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import logging
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import torch

from ..core.params import check_params, declarations
from .topn import recommend_frame
from .vocabulary import Vocabulary

MODEL_FORMAT = "spark_recs.model/1"
MODEL_FILE_WHAT = "a spark_recs model file (written by Model.save)"
#: The package's own model classes: a file naming one of these may import its module.
BUILTIN_KINDS = frozenset(
    {
        "spark_recs.models.popular:Popular",
        "spark_recs.models.bias:Bias",
        "spark_recs.models.mf:BiasedMF",
        "spark_recs.models.mf:ImplicitMF",
        "spark_recs.models.knn:ItemKNN",
        "spark_recs.models.cooccurrence:ItemCoOccurrence",
        "spark_recs.models.gru4rec.model:GRU4Rec",
        "spark_recs.rl.recommender:ActorRecommender",
        "spark_recs.rl.gym_agent:RatingPolicy",
    }
)
_DEFINED: dict[str, type[Model]] = {}  # every Model subclass defined in this process, by kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Payload:
    """A fitted model as bytes (the content of a saved model file): what Spark workers receive."""

    data: bytes

    def restore(self, device: str | None = None) -> Model:
        """Rebuild the model (optionally onto ``device``)."""
        return Model.load(io.BytesIO(self.data), device=device)


class Model:
    """Base class: sklearn-style params, payload round trip, save/load without pickle.

    Subclasses implement ``fit``, ``state()`` (a dict of tensors) and ``from_state(config, state)``.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _DEFINED[model_kind(cls)] = cls

    def get_params(self) -> dict:
        """Constructor parameters and their current values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> Model:
        """Set constructor parameters; unknown names are an error. A model declaring ``Params`` checks them
        (:func:`~spark_recs.core.params.check_params`: a one-line ``ConfigError``, the model left as it was;
        ones not set yet take their default) and keeps NumPy scalars as Python numbers, pairs as tuples."""
        if not hasattr(self, "Params"):
            valid = self.get_params()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(
                        f"{type(self).__name__} has no parameter {name!r}; valid: {sorted(valid)}"
                    )
                setattr(self, name, value)
            return self
        declared = declarations(self)
        current = {name: getattr(self, name) for name in declared if hasattr(self, name)}
        checked = check_params(self, {name: _plain(value) for name, value in (current | params).items()})
        for name, value in self._resolve_params(checked).items():
            fixed = declared[name].rule.length is not None and isinstance(value, list)
            setattr(self, name, tuple(value) if fixed else value)
        return self

    def _init_params(self, args: tuple, params: dict) -> None:
        """Set the declared parameters from a constructor's arguments: positional ones in declaration order
        (LensKit's ``BiasedMF(50)``), then keywords."""
        names = list(declarations(self))
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(names)} positional parameters ({names})"
            )
        given = dict(zip(names, args))
        if given.keys() & params.keys():
            raise TypeError(f"{type(self).__name__} got {sorted(given.keys() & params.keys())} twice")
        self.set_params(**given, **params)

    def _resolve_params(self, params: dict) -> dict:
        """The checked ``params`` as the model keeps them: a subclass fills in defaults that depend on
        other parameters and checks parameters against each other here."""
        return params

    def state(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict, state: dict) -> Model:
        raise NotImplementedError

    def payload(self) -> Payload:
        """The fitted model as a :class:`Payload` (what travels to Spark workers)."""
        buffer = io.BytesIO()
        self.save(buffer)
        return Payload(buffer.getvalue())

    def save(self, target: str | Path | BinaryIO) -> str | Path | BinaryIO:
        """Write the fitted model to a file path (atomically) or a binary file object; returns ``target``."""
        content = {
            "format": MODEL_FORMAT,
            "kind": model_kind(type(self)),
            "config": json.dumps(self.get_params()),
            "state": self.state(),
        }
        write_file(content, target)
        return target

    @classmethod
    def load(cls, source: str | Path | BinaryIO, device: str | None = None) -> Model:
        """Read a model written by :meth:`save`; ``Model.load`` accepts any kind, a subclass only its own."""
        content = read_file(source)
        if not isinstance(content, dict) or content.get("format") != MODEL_FORMAT:
            raise ValueError(f"{_name(source)} is not {MODEL_FILE_WHAT}: it has no {MODEL_FORMAT!r} marker")
        if not (isinstance(content.get("kind"), str) and isinstance(content.get("config"), str)):
            raise ValueError(f"{_name(source)} is not {MODEL_FILE_WHAT}: its kind or config is not text")
        try:
            model_cls = model_class(content["kind"])
        except ValueError as exc:
            raise ValueError(f"{_name(source)}: {exc}") from None
        if not issubclass(model_cls, cls):
            raise ValueError(f"{_name(source)} holds a {model_cls.__name__}, not a {cls.__name__}")
        config = json.loads(content["config"])
        if device is not None and "device" in config:
            config["device"] = device
        return model_cls.from_state(config, content["state"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _plain(value):
    """``value`` with NumPy scalars made Python numbers and tuples made lists, as a config holds them."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value.item() if isinstance(value, np.generic) else value


def write_file(content: dict, target) -> None:
    """``torch.save`` to a path (atomically: a killed write leaves the old file) or a binary file object."""
    if not isinstance(target, (str, os.PathLike)):
        torch.save(content, target)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(content, partial)
    os.replace(partial, path)


def read_file(source, device=None, what: str = MODEL_FILE_WHAT):
    """Load a file written by :func:`write_file` without unpickling arbitrary objects.

    Anything else is a one-line ``ValueError`` saying ``source`` is not ``what``: torch's own message
    would suggest loading untrusted code (``weights_only`` off), which spark_recs never does.
    """
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(source, map_location=device or "cpu", weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError:
        reason = "it holds Python objects other than tensors, strings and numbers, which are never unpickled"
    except Exception:
        reason = "it is truncated or not a torch.save file"
    raise ValueError(f"{_name(source)} is not {what}: {reason}")


def _name(source) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "the given file"


def model_kind(cls: type) -> str:
    """The ``module:Class`` a saved file records for model class ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def model_class(kind: str) -> type[Model]:
    """The :class:`Model` subclass of a saved file's ``kind``: a built-in one (its module imported) or one
    already defined in this process. Anything else is refused without importing anything."""
    if kind not in _DEFINED and kind in BUILTIN_KINDS:
        importlib.import_module(kind.partition(":")[0])
    cls = _DEFINED.get(kind)
    if cls is None:
        raise ValueError(
            f"model kind {kind!r} is neither a built-in model nor a Model subclass defined in this process: "
            "import the module that defines it before loading"
        )
    return cls


def import_model_class(kind: str) -> type[Model]:
    """The :class:`Model` subclass ``module:Class`` of the caller's own code, importing its module.

    For a class the user names on purpose (a MultiEval config entry, ``batch.train_isolated``'s child);
    a model file's ``kind`` goes through :func:`model_class`, which imports nothing but built-in models.
    """
    module, _, name = kind.partition(":")
    if not module or not name:
        raise ValueError(f"model class {kind!r} is not of the form 'package.module:Class'")
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ValueError(f"model class {kind!r}: {exc} (is its package installed or on sys.path?)") from None
    cls = getattr(found, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ValueError(f"model class {kind!r} does not name a spark_recs Model subclass")
    return cls


def item_indices(model: Model, items: np.ndarray) -> np.ndarray:
    """The model's index of each item, -1 for one it does not know: the vocabulary's index, or for a model
    on dense indices (no ``item_vocab``) the item itself when in ``0..n_items-1``; a null item is unknown."""
    vocabulary = getattr(model, "item_vocab", None)
    if vocabulary is not None:
        return vocabulary.indices(items)
    index = pd.array(items, dtype="Int64").fillna(-1).to_numpy(dtype=np.int64)
    return np.where((index >= 0) & (index < model.n_items), index, -1)


def check_items(items: np.ndarray, what: str = "training data") -> np.ndarray:
    """Item indices as int64, refusing empty input and negative indices with a clear message."""
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        raise ValueError(f"{what} is empty: nothing to fit (check the split and filters upstream)")
    if items.min() < 0:
        raise ValueError(f"{what} has negative item indices: index items with IdIndex first")
    return items


class Recommender(Model):
    """A user x item model fitted on a ratings frame with raw ids (LensKit's ``Recommender``/``Predictor``).

    Fitting records the ``user_vocab`` and ``item_vocab`` and which items each user interacted with
    (``rated``, CSR), the default candidate exclusion. Subclasses implement ``fit`` (calling
    :meth:`_index_ratings`), ``score_users``, ``_tensors`` and ``_load_tensors``.

    ``score_users(users)`` takes user indices (-1 = a user unknown to the model) and returns float32
    scores ``(len(users), n_items)`` in a new tensor the caller may modify; NaN means "no score" (e.g.
    no fallback for an unknown user).
    ``predict_pairs`` defaults to reading those scores.
    """

    user_key = "user"
    item_key = "item"
    rating_key = "rating"
    #: Whether scores are rating predictions (RMSE/MAE make sense), not just a ranking.
    predicts_ratings = False

    user_vocab: Vocabulary
    item_vocab: Vocabulary
    rated_indptr: torch.Tensor
    rated_indices: torch.Tensor

    # ---- fitting ------------------------------------------------------------------------------------

    def _index_ratings(
        self, ratings, *, need_rating: bool = False, items: Vocabulary | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Set vocabularies and the rated-items CSR from ``ratings``; return user and item indices and ratings.

        ``ratings``: pandas or Spark DataFrame with ``user``, ``item`` (and ``rating`` when
        ``need_rating``; without it every rating counts as 1). ``items``: a fixed item vocabulary (e.g. the
        items that have an embedding); rows with other items are left out and counted in the log.
        """
        columns = [self.user_key, self.item_key]
        if need_rating or (self.rating_key in ratings.columns):
            columns.append(self.rating_key)
        missing = [c for c in columns if c not in ratings.columns]
        if missing:
            raise ValueError(
                f"{type(self).__name__}.fit needs column(s) {missing}; the ratings have {list(ratings.columns)}"
            )
        if hasattr(ratings, "sparkSession"):
            from spark_recs.data.io import collect_columns  # Spark only where the ratings are in Spark

            frame = collect_columns(ratings, columns)
        else:
            frame = ratings[columns]
        if frame.empty:
            raise ValueError("the ratings are empty: nothing to fit (check the split and filters upstream)")
        for column in columns:
            nulls = int(frame[column].isna().sum())
            if nulls:
                raise ValueError(
                    f"column {column!r} has {nulls} missing values: validate the ratings first "
                    "(spark_recs.data.schema.validate keeps them in its rejected output)"
                )
        if items is not None:
            known = items.indices(frame[self.item_key].to_numpy()) >= 0
            if not known.all():
                log.info(
                    "%d of %d rows have items outside the item vocabulary: left out",
                    (~known).sum(),
                    len(known),
                )
            frame = frame[known]
        self.user_vocab = Vocabulary.fit(frame[self.user_key])
        self.item_vocab = items if items is not None else Vocabulary.fit(frame[self.item_key])
        users = self.user_vocab.indices(frame[self.user_key].to_numpy())
        items = self.item_vocab.indices(frame[self.item_key].to_numpy())
        pairs = np.unique(users * len(self.item_vocab) + items)
        self.rated_indptr = torch.from_numpy(
            np.r_[0, np.cumsum(np.bincount(pairs // len(self.item_vocab), minlength=len(self.user_vocab)))]
        )
        self.rated_indices = torch.from_numpy(pairs % len(self.item_vocab))
        values = (
            frame[self.rating_key].to_numpy(dtype=np.float64)
            if self.rating_key in frame
            else np.ones(len(frame))
        )
        return users, items, values

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    # ---- state --------------------------------------------------------------------------------------

    def _tensors(self) -> dict:
        raise NotImplementedError

    def _load_tensors(self, state: dict) -> None:
        raise NotImplementedError

    def state(self) -> dict:
        if getattr(self, "item_vocab", None) is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")
        return {
            **self.user_vocab.state("user"),
            **self.item_vocab.state("item"),
            "rated_indptr": self.rated_indptr,
            "rated_indices": self.rated_indices,
            **self._tensors(),
        }

    @classmethod
    def from_state(cls, config: dict, state: dict) -> Recommender:
        model = cls(**config)
        model.user_vocab = Vocabulary.from_state(state, "user")
        model.item_vocab = Vocabulary.from_state(state, "item")
        model.rated_indptr, model.rated_indices = state["rated_indptr"], state["rated_indices"]
        model._load_tensors(state)
        return model

    # ---- scoring ------------------------------------------------------------------------------------

    def score_users(self, users: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def predict_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted score per (user index, item index) pair; NaN where the model has none (item -1)."""
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        out = np.full(len(users), np.nan)
        known = items >= 0
        distinct, rows = np.unique(users[known], return_inverse=True)
        if len(distinct):
            scores = self.score_users(distinct)
            out[known] = scores[torch.from_numpy(rows), torch.from_numpy(items[known])].double().numpy()
        return out

    def rated_mask(self, users: np.ndarray) -> torch.Tensor:
        """``(len(users), n_items)`` booleans: True where the (known) user interacted with the item in training."""
        users = np.asarray(users, dtype=np.int64)
        mask = torch.zeros(len(users), self.n_items, dtype=torch.bool)
        known = np.flatnonzero(users >= 0)
        starts = self.rated_indptr[users[known]].numpy()
        lengths = self.rated_indptr[users[known] + 1].numpy() - starts
        total = int(lengths.sum())
        if total:
            offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            cols = self.rated_indices[torch.from_numpy(np.repeat(starts, lengths) + offsets)]
            mask[torch.from_numpy(np.repeat(known, lengths)), cols] = True
        return mask

    # ---- in-process API (LensKit's) -----------------------------------------------------------------

    def recommend(self, user, n: int | None = None, candidates=None) -> pd.DataFrame:
        """Top-``n`` items for one raw user id: ``item, score`` ordered by score desc, then item id asc.

        ``candidates``: raw item ids to choose from (default: every item the user did not interact with
        in training; every item for an unknown user). ``n=None`` returns all candidates with a score.
        """
        recs = recommend_frame(
            self, np.array([user], dtype=object), n, None if candidates is None else [candidates]
        )
        return recs[["item", "score"]].reset_index(drop=True)

    def predict_for_user(self, user, items) -> pd.Series:
        """Predicted scores of raw ``items`` for one raw ``user``, indexed by item (NaN = no prediction)."""
        items = list(items)
        users = np.full(len(items), self.user_vocab.indices([user])[0])
        return pd.Series(
            self.predict_pairs(users, self.item_vocab.indices(items)), index=items, name="prediction"
        )
