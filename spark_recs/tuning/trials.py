"""One trial of a search, run inside a Spark task: the objective, its per-epoch reports and pruning.

The driver ships a :class:`TrialTask` (the objective, which names its data by location, never holds it,
the trial's parameters, and the finished trials a pruner compares against); the task returns a
:class:`TrialResult` as one JSON row. An objective is a picklable callable ``objective(params, report)``
returning the trial's value; ``report(epoch, value, metrics)`` records an epoch and raises
``optuna.TrialPruned`` when the pruner stops the trial.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import optuna
import pandas as pd

#: The one column a trial task returns: its :class:`TrialResult` as JSON.
RESULT_SCHEMA = "result string"
Report = Callable[[int, float, dict], None]
Objective = Callable[[dict, Report], float]


@dataclass
class TrialResult:
    """What a trial did: ``state`` ``COMPLETE``, ``PRUNED`` or ``FAIL`` (with ``error``), the value, the
    metric after each epoch (``intermediate``), every epoch's metrics, and the data it read."""

    number: int
    state: str
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    inputs: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        found = json.loads(text)
        found["intermediate"] = {int(k): v for k, v in found["intermediate"].items()}
        return cls(**found)


@dataclass(frozen=True)
class TrialTask:
    """Everything a Spark task needs to run one trial."""

    objective: Objective
    number: int
    params: dict
    direction: str
    pruner: optuna.pruners.BasePruner
    #: The finished trials the pruner compares this one with (their intermediate values).
    history: list[optuna.trial.FrozenTrial]
    threads: int = 1

    def run(self) -> TrialResult:
        """Run the objective here (torch on ``threads`` threads, restored afterwards: an engine may run
        Python tasks in its own process); any error becomes a ``FAIL`` result."""
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(previous)

    def _run(self) -> TrialResult:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # A private study of the finished trials lets the pruner decide inside the task.
        study = optuna.create_study(
            direction=self.direction, pruner=self.pruner, sampler=optuna.samplers.RandomSampler(0)
        )
        study.add_trials(self.history)
        trial = study.ask()
        result = TrialResult(self.number, "RUNNING", inputs=list(getattr(self.objective, "inputs", [])))

        def report(epoch: int, value: float, metrics: dict) -> None:
            result.intermediate[epoch] = float(value)
            result.epochs.append({"epoch": epoch, **metrics})
            trial.report(float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        start = time.perf_counter()
        try:
            result.value = float(self.objective(self.params, report))
            result.state = "COMPLETE"
        except optuna.TrialPruned:
            result.state = "PRUNED"
            result.value = result.intermediate[max(result.intermediate)]
        except Exception as error:  # the trial fails, the search goes on; the error is recorded
            result.state = "FAIL"
            result.error = _one_line(error)
            result.traceback = traceback.format_exc()
        result.seconds = time.perf_counter() - start
        return result


def run_in_task(payload: TrialTask) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function of a one-row frame: runs the trial once, yields its result."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if len(batch):
                yield pd.DataFrame({"result": [payload.run().to_json()]})

    return run


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
