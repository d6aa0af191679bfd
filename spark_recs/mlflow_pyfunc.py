"""The "models from code" file of every logged spark_recs model: MLflow runs it to load the model, and it
sets :class:`~spark_recs.serving.pyfunc.SparkRecsPyfunc` as the model (importing it has that effect)."""

import mlflow

from spark_recs.serving.pyfunc import SparkRecsPyfunc

mlflow.models.set_model(SparkRecsPyfunc())
