"""Hyperparameter search: search spaces checked against the models' parameter declarations, and
resumable Optuna studies."""

from spark_recs.tuning.space import Dimension, SearchSpace, read_paramspace, search_space
from spark_recs.tuning.study import direction, open_study, sampler

__all__ = [
    "Dimension",
    "SearchSpace",
    "direction",
    "open_study",
    "read_paramspace",
    "sampler",
    "search_space",
]
