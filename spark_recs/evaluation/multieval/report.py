"""MultiEval in MLflow: one parent run per evaluation, one nested run per run, the runs table and plots.

One parent run per evaluation (named after the folder; its id in ``mlflow_parent_run.txt`` so every later
``run`` call and every fan-out job adds to it) and one nested run per run: params ``RunId``, ``DataSet``,
``Partition``, ``AlgoClass``, ``AlgoStr``, the attrs and extra columns, the model's ``get_params()`` as
``algo.<name>`` and ``seed``; metrics (MLflow keys: ``@`` becomes ``_at_``, e.g. ``ndcg_at_10``) with
``TrainTime``/``PredTime``/``RecTime``; the artifact ``user_metrics.csv`` (and the logged model with
``save_models``). A run that raises ends ``FAILED`` with an ``error`` tag and a ``traceback.txt``. The parent
gets ``runs.csv`` and ``plots/*.png``.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd

from spark_recs import tracking
from spark_recs.evaluation.multieval.store import Store, replaced

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "spark_recs-multieval"
PARENT_RUN_FILE = "mlflow_parent_run.txt"


class Report:
    """The MLflow side of the evaluation in ``store``: ``experiment`` on ``tracking_uri``."""

    def __init__(self, store: Store, experiment: str | None = None, tracking_uri: str | None = None) -> None:
        self.store = store
        self.experiment = experiment or DEFAULT_EXPERIMENT
        self.tracking_uri = tracking_uri

    @contextmanager
    def parent(self) -> Iterator[str]:
        """The evaluation's parent run (created on first use), resumed as the active run; yields its id."""
        path = self.store.path
        parent = tracking.parent_run_id(
            self.experiment, path.name, path / PARENT_RUN_FILE, tracking_uri=self.tracking_uri
        )
        with tracking.resumed_run(parent, tracking_uri=self.tracking_uri):
            yield parent

    def summary(self) -> None:
        """Log ``runs.csv`` (rebuilt) and the plots to the active (parent) run."""
        table = self.store.results()
        mlflow.log_artifact(str(self.store.write_runs_csv()))
        labels = {run_id: r.get("_label", r["AlgoStr"]) for run_id, r in self.store.records().items()}
        for plot in _plot(table, labels, self.store.metrics, self.store.path / "plots"):
            mlflow.log_artifact(str(plot), artifact_path="plots")


def end_failed(child_id: str, error: str, trace: str | None = None, status: str = "FAILED") -> None:
    """End the nested run ``child_id`` with ``status``, its ``error`` tag and ``traceback.txt``; an error doing
    so is logged, not raised: bookkeeping must not hide the run's own error."""
    try:
        tracking.fail_run(child_id, error, trace, status=status)
    except Exception:
        log.exception("could not record the failure in MLflow")


def _plot(table: pd.DataFrame, labels: Mapping[int, str], metrics: list[str], folder: Path) -> list[Path]:
    """One PNG per metric in ``folder``: per data set, one bar per algorithm (``labels`` by RunId), the mean
    over partitions with std error bars."""
    ok = table[table["status"] == "ok"] if "status" in table.columns else table.iloc[0:0]
    names = [m for m in metrics if m in ok.columns and ok[m].notna().any()]
    if ok.empty or not names:
        return []
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.warning("matplotlib is not installed: no plots")
        return []
    ok = ok.assign(_label=ok["RunId"].map(labels))
    datasets = list(dict.fromkeys(ok["DataSet"]))
    written = []
    for metric in names:
        stats = ok.groupby(["DataSet", "_label"], sort=False)[metric].agg(["mean", "std"])
        widest = max(len(stats.loc[d]) for d in datasets)
        size = (max(4.5, 1.5 + 1.3 * widest * len(datasets)), 4.8)
        figure = Figure(figsize=size, layout="constrained")
        axes = figure.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
        for ax, name in zip(axes, datasets):
            part = stats.loc[name]
            ax.bar(range(len(part)), part["mean"], yerr=part["std"].fillna(0.0), capsize=4, color="tab:blue")
            ticks = [textwrap.fill(str(label), 18) for label in part.index]
            ax.set_xticks(range(len(part)), ticks, fontsize=7)
            ax.set_title(name)
        axes[0].set_ylabel(metric)
        figure.suptitle(f"{metric}: mean over partitions, error bars = std")
        stem = re.sub(r"[^\w.-]", "_", metric.replace("@", "_at_"))
        target = folder / f"{stem}.png"
        with replaced(target) as partial:
            figure.savefig(partial, dpi=100, format="png")
        written.append(target)
    return written
