"""A fitted model's handle: references (files, MLflow URIs), transport to Spark's workers, training in a
child process, and MLflow logging and registration.

Names are imported on first use (PEP 562): importing the package loads neither MLflow, Spark nor torch, and
``python -m spark_recs.serving.isolated`` does not import the module it runs twice.
"""

from spark_recs.core.exports import lazy_exports

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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
