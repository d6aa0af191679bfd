"""What a served model answers (the MLflow pyfunc contract) and an input example for each kind of model.

Input frames:

- ``user`` and ``item`` -> one ``prediction`` per row, aligned with the input (null where the model has
  none), so ``mlflow.pyfunc.spark_udf(spark, uri, result_type="double")`` works on pairs;
- ``user`` only -> the top-``n`` recommendations ``user, rank, item, score``;
- ``session`` and ``item`` (events in order) -> the top-``n`` next items ``session, rank, item, score``.

A model with its own contract (e.g. the Gym rating policy) defines ``predict_frame(frame)`` and
``input_example()``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Model, Recommender, item_indices
from .topn import recommend_frame, top_k


def serve(model: Model, frame: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The model's answer to one input frame (see the module docstring)."""
    if hasattr(model, "predict_frame"):
        return model.predict_frame(frame)
    if isinstance(model, Recommender) and "item" in frame:
        users = model.user_vocab.indices(frame["user"].to_numpy())
        items = model.item_vocab.indices(frame["item"].to_numpy())
        return pd.DataFrame({"prediction": model.predict_pairs(users, items)}, index=frame.index)
    if isinstance(model, Recommender):
        return recommend_frame(model, frame["user"].drop_duplicates().to_numpy(), n)
    vocabulary = getattr(model, "item_vocab", None)
    frames = []
    for session, events in frame.groupby("session", sort=False):
        items = item_indices(model, events["item"].to_numpy())
        items = items[items >= 0]
        if len(items):
            best, scores = top_k(model.score_sessions([items]), n)
            frames.append(
                pd.DataFrame(
                    {
                        "session": session,
                        "rank": np.arange(1, best.shape[1] + 1),
                        "item": vocabulary.ids[best[0].numpy()]
                        if vocabulary is not None
                        else best[0].numpy(),
                        "score": scores[0].numpy(),
                    }
                )
            )
    empty = pd.DataFrame(columns=["session", "rank", "item", "score"])
    return pd.concat(frames, ignore_index=True) if frames else empty


def input_example(model: Model) -> pd.DataFrame:
    """A small valid input frame, logged with the model so the MLflow UI shows how to call it."""
    if hasattr(model, "input_example"):
        return model.input_example()
    if isinstance(model, Recommender):
        return pd.DataFrame({"user": model.user_vocab.ids[:2]})
    vocabulary = getattr(model, "item_vocab", None)
    items = vocabulary.ids[:2] if vocabulary is not None else np.arange(min(2, model.n_items))
    return pd.DataFrame({"session": [1] * len(items), "item": items})
