"""Validation of GRU4Rec's constructor parameters."""

from __future__ import annotations

from .losses import LOSSES
from .optim import ALGORITHMS


def _optional_positive(value) -> bool:
    return value is None or value > 0


CHECKS = {
    "layers": (lambda v: len(v) > 0 and all(int(x) > 0 for x in v), "a non-empty list of positive sizes"),
    "loss": (lambda v: v in LOSSES, f"one of {LOSSES}"),
    "optimization_algorithm": (lambda v: v in ALGORITHMS, f"one of {ALGORITHMS}"),
    "batch_size": (lambda v: int(v) >= 1, "at least 1"),
    "dropout_p_embed": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "dropout_p_hidden": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "learning_rate": (lambda v: v > 0, "positive"),
    "momentum": (lambda v: v >= 0, "non-negative"),
    "sample_alpha": (lambda v: v >= 0, "non-negative"),
    "n_sample": (lambda v: int(v) >= 0, "non-negative"),
    "embedding": (lambda v: v == "layersize" or int(v) >= 0, "a size >= 0 or 'layersize'"),
    "n_epochs": (lambda v: int(v) >= 0, "non-negative"),
    "bpreg": (lambda v: v >= 0, "non-negative"),
    "elu_param": (lambda v: v >= 0, "non-negative"),
    "logq": (lambda v: v >= 0, "non-negative"),
    "clipnorm": (_optional_positive, "None or positive"),
    "max_iter_no_change": (lambda v: int(v) >= 1, "at least 1"),
    "stopping_criterion": (lambda v: v in ("recall", "mrr"), "'recall' or 'mrr'"),
    "stopping_cutoff": (lambda v: int(v) >= 1, "at least 1"),
    "validation_sample_size": (_optional_positive, "None or positive"),
    "predict_topK": (_optional_positive, "None or positive"),
}


def validate_params(params: dict) -> None:
    """Raise ``ValueError`` naming the first invalid parameter and what it should be."""
    for name, (check, expected) in CHECKS.items():
        try:
            ok = bool(check(params[name]))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"GRU4Rec parameter {name}={params[name]!r} is invalid: expected {expected}")
