"""The MLflow ``python_function`` wrapper of a spark_recs model ("models from code": nothing pickled).

``tracking.log_model`` logs this file as the model's code and the saved model file as its artifact, so
``mlflow.pyfunc.load_model(uri).predict(frame)`` works for serving, while ``spark_recs.batch`` reads the
artifact directly. Input: a frame with ``user`` and ``item`` -> predictions; with ``user`` only -> the
top-``n`` recommendations (``params={"n": 10}``); with ``session`` and ``item`` (in order) -> next items.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from spark_recs.models.base import Model, Recommender
from spark_recs.models.topn import recommend_frame, top_k


class SparkRecsPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.model = Model.load(context.artifacts["model"], device="cpu")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        n = int((params or {}).get("n", 10))
        model = self.model
        if isinstance(model, Recommender) and "item" in model_input:
            users = model.user_vocab.indices(model_input["user"].to_numpy())
            items = model.item_vocab.indices(model_input["item"].to_numpy())
            return model_input.assign(prediction=model.predict_pairs(users, items))
        if isinstance(model, Recommender):
            return recommend_frame(model, model_input["user"].drop_duplicates().to_numpy(), n)
        frames = []
        for session, events in model_input.groupby("session", sort=False):
            items = model.item_vocab.indices(events["item"].to_numpy())
            items = items[items >= 0]
            if len(items):
                best, scores = top_k(model.score_sessions([items]), n)
                frames.append(
                    pd.DataFrame(
                        {
                            "session": session,
                            "rank": np.arange(1, best.shape[1] + 1),
                            "item": model.item_vocab.ids[best[0].numpy()],
                            "score": scores[0].numpy(),
                        }
                    )
                )
        empty = pd.DataFrame(columns=["session", "rank", "item", "score"])
        return pd.concat(frames, ignore_index=True) if frames else empty


mlflow.models.set_model(SparkRecsPyfunc())
