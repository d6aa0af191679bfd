"""The job layer: each job kind is one task, its config schema, its steps and a typed result.

The ``spark-recs`` CLI (and through it the spark-submit jobs and the Databricks bundle's wheel tasks) and
the notebooks run every job through this registry: ``run("train", spark, config, ...)`` calls the
``train`` step of the task of ``config["kind"]``. Batch scoring of a saved model (:mod:`.scoring`:
``recommend``, ``predict``) depends on the model, not on a config kind.

========== ========================= ============================
kind       module                    steps
========== ========================= ============================
gru4rec    :mod:`.gru4rec`           prepare, train, evaluate, tune, promote
rl         :mod:`.rl`                train, tune, promote
gym        :mod:`.gym`               train
multieval  :mod:`.multieval`         multieval, plan, collect, tune
demo       :mod:`.demo`              demo
========== ========================= ============================
"""

from __future__ import annotations

from spark_recs.core.params import ConfigError, closest

from .base import Task, Trained

__all__ = ["TASKS", "Task", "Trained", "run", "task"]

TASKS: dict[str, Task] = {
    t.kind: t
    for t in (
        Task(
            "gru4rec",
            f"{__name__}.gru4rec",
            ("prepare", "train", "evaluate", "tune", "promote"),
            "GRU4Rec on session logs",
        ),
        Task("rl", f"{__name__}.rl", ("train", "tune", "promote"), "a recnn-style RL actor on ratings"),
        Task("gym", f"{__name__}.gym", ("train",), "PPO on the MovieLens rating Gym"),
        Task(
            "multieval",
            f"{__name__}.multieval",
            ("multieval", "plan", "collect", "tune"),
            "a LensKit-style comparison",
        ),
        Task("demo", f"{__name__}.demo", ("demo",), "the end-to-end demo job"),
    )
}


def task(kind: str) -> Task:
    """The task of ``kind``; an unknown kind is a one-line :class:`ConfigError` naming the closest."""
    if kind not in TASKS:
        raise ConfigError(f"kind: {kind!r} is unknown{closest(str(kind), list(TASKS))}")
    return TASKS[kind]


def run(step: str, spark, config: dict, *args, **options):
    """Run ``step`` of the task of ``config["kind"]`` (a config from :func:`spark_recs.config.load_config`)."""
    return task(config["kind"]).step(step)(spark, config, *args, **options)
