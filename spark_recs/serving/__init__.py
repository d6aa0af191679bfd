"""A fitted model's handle: references (files, MLflow URIs), transport to Spark's workers, training in a
child process, and MLflow logging and registration.

Names are imported on first use (PEP 562): importing the package loads neither MLflow, Spark nor torch, and
``python -m spark_recs.serving.isolated`` does not import the module it runs twice.
"""

import importlib

_MODULES = {
    "references": (
        "LoadedModel",
        "TrainedModel",
        "check_model",
        "load_model",
        "load_reference",
        "model_file",
    ),
    "transport": ("ModelRef", "ship", "task_threads"),
    "isolated": ("train_isolated",),
    "registry": ("Registration", "log_and_register", "log_model"),
    "pyfunc": ("SparkRecsPyfunc",),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
