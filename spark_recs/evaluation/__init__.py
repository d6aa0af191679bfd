"""Evaluation: top-N and rating-prediction metrics (:mod:`.accuracy`), next-item evaluation of session
models (:mod:`.sessions`) and LensKit's :class:`MultiEval` (:mod:`.multieval`).

The names are loaded on first use (PEP 562), so ``import spark_recs.evaluation`` loads neither Spark,
torch nor MLflow, and importing one submodule does not import the others.
"""

from __future__ import annotations

import importlib

_ACCURACY = (
    "RecListAnalysis",
    "TopNMetric",
    "precision",
    "recall",
    "hit",
    "recip_rank",
    "ndcg",
    "ndcg_log2p1",
    "rmse",
    "mae",
    "prediction_metrics",
    "global_metric",
    "user_metric",
)
_SESSIONS = ("evaluate_sessions", "batch_eval", "SessionEvaluation")
_MODULES = (
    {"MultiEval": "multieval"} | dict.fromkeys(_ACCURACY, "accuracy") | dict.fromkeys(_SESSIONS, "sessions")
)

__all__ = list(_MODULES)


def __getattr__(name: str):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
