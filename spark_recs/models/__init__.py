"""The models, on one contract (:class:`Model`, :class:`Recommender`): the user models ``Popular``,
``Bias``, ``BiasedMF``, ``ImplicitMF`` and ``ItemKNN``, and the session models ``ItemCoOccurrence`` and
``GRU4Rec``. ``from spark_recs.models import BiasedMF`` is ``from spark_recs.models.mf import BiasedMF``.

Names are imported on first use (PEP 562): a Spark worker importing ``spark_recs.models.base`` loads no
model it does not run.
"""

from __future__ import annotations

from spark_recs.core.exports import lazy_exports

_MODULES = {
    "base": ("Model", "Recommender"),
    "popular": ("Popular",),
    "bias": ("Bias",),
    "mf": ("MatrixFactorization", "BiasedMF", "ImplicitMF"),
    "knn": ("ItemKNN",),
    "cooccurrence": ("ItemCoOccurrence",),
    "gru4rec.model": ("GRU4Rec",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
