"""The models, on one contract (:class:`Model`, :class:`Recommender`): the user models ``Popular``,
``Bias``, ``BiasedMF``, ``ImplicitMF`` and ``ItemKNN``, and the session models ``ItemCoOccurrence`` and
``GRU4Rec``. ``from spark_recs.models import BiasedMF`` is ``from spark_recs.models.mf import BiasedMF``.

Names are imported on first use (PEP 562): a Spark worker importing ``spark_recs.models.base`` loads no
model it does not run.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "base": ("Model", "Recommender"),
    "popular": ("Popular",),
    "bias": ("Bias",),
    "mf": ("MatrixFactorization", "BiasedMF", "ImplicitMF"),
    "knn": ("ItemKNN",),
    "cooccurrence": ("ItemCoOccurrence",),
    "gru4rec.model": ("GRU4Rec",),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
