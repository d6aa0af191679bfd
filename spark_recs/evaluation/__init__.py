"""Evaluation: top-N and rating-prediction metrics (:mod:`.accuracy`), next-item evaluation of session
models (:mod:`.sessions`) and LensKit's :class:`MultiEval` (:mod:`.multieval`).

The names are loaded on first use (PEP 562), so ``import spark_recs.evaluation`` loads neither Spark,
torch nor MLflow, and importing one submodule does not import the others.
"""

from __future__ import annotations

from spark_recs.core.exports import lazy_exports

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
_MODULES = {"multieval": ("MultiEval",), "accuracy": _ACCURACY, "sessions": _SESSIONS}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
