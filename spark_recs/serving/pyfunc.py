"""The MLflow ``python_function`` wrapper of a spark_recs model ("models from code": nothing pickled).

:func:`~spark_recs.serving.registry.log_model` logs :mod:`spark_recs.mlflow_pyfunc` (which sets this
wrapper as the model) as the model's code and the saved model file as its artifact, so
``mlflow.pyfunc.load_model(uri).predict(frame)`` and ``mlflow.pyfunc.spark_udf`` work, while
``spark_recs.batch`` reads the artifact directly. The input frames are described in
:mod:`spark_recs.models.serving`; ``params={"n": 10}`` sets the list length.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from spark_recs.models.base import Model
from spark_recs.models.serving import serve


class SparkRecsPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.model = Model.load(context.artifacts["model"], device="cpu")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return serve(self.model, model_input, int((params or {}).get("n", 10)))
