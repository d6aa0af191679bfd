"""Hyperparameter search: search spaces checked against the models' parameter declarations, resumable
Optuna studies, and searches whose trials run as Spark tasks, tracked in MLflow."""

from spark_recs.tuning.search import Searched, SearchParams, search
from spark_recs.tuning.space import Dimension, SearchSpace, read_paramspace, search_space
from spark_recs.tuning.study import direction, open_study, sampler

__all__ = [
    "Dimension",
    "SearchParams",
    "SearchSpace",
    "Searched",
    "direction",
    "open_study",
    "read_paramspace",
    "sampler",
    "search",
    "search_space",
]
