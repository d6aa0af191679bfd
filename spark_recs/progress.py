"""Progress of long jobs on stderr: a line per step (:class:`Steps`; Spark's own bar shows per-stage progress
on a terminal) and progress over many units (:class:`Progress`: a bar on a terminal, plain lines in a log)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Steps:
    """Prints ``[i/n] what ... done in s`` for each step of a job, to stderr; a step given a ``name`` also
    logs its duration as the metric ``<name>_seconds`` to the active MLflow run, when there is one (a
    job's run shows its steps as they end)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr

    @contextmanager
    def step(self, what: str, name: str | None = None) -> Iterator[None]:
        self.done += 1
        print(f"[{self.done}/{self.total}] {what} ...", file=self.stream, flush=True)
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        print(f"[{self.done}/{self.total}] {what}: done in {seconds:.1f}s", file=self.stream, flush=True)
        if name is not None:
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_metric(f"{name}_seconds", seconds)


#: Seconds between plain progress lines (what a log file gets instead of a bar's redraws).
LINE_EVERY = 20.0


class Progress:
    """Progress over ``total`` units, to stderr: a tqdm bar on a terminal, else plain lines (no ``\\r``
    redraws filling a redirected log), at most one every ``every`` seconds plus one at the end (``final``).

    ``unit``: plural (``"batches"``). ``bar=False``: plain lines on a terminal too. ``enabled=False``:
    nothing is printed.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        *,
        enabled: bool = True,
        every: float = LINE_EVERY,
        bar: bool = True,
        final: bool = True,
        stream=None,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled, self.every, self.final = enabled, every, final
        self.stream = stream or sys.stderr
        self.done = 0
        self.values: dict = {}
        self.started = self.shown = time.perf_counter()
        self.bar = None
        if enabled and bar and self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=self.stream)

    def update(self, n: int = 1, **values) -> None:
        """Count ``n`` more units; ``values`` (e.g. the latest loss) are shown beside the count. A callable
        value is called only when shown (a line, or a bar refresh at most once a second)."""
        self.done += n
        self.values = values
        if self.bar is not None:
            self.bar.update(n)
        now = time.perf_counter()
        if self.enabled and now - self.shown >= (1.0 if self.bar is not None else self.every):
            self.shown = now
            if self.bar is not None:
                self.bar.set_postfix(self._values(), refresh=False)
            else:
                self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.final:
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _values(self) -> dict:
        values = {k: v() if callable(v) else v for k, v in self.values.items()}
        return {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in values.items()}

    def _line(self) -> None:
        seconds = time.perf_counter() - self.started
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        parts = [
            f"{self.done:,}/{self.total:,} {self.unit}{share} in {seconds:.1f}s",
            f"{self.done / max(seconds, 1e-9):,.0f} {self.unit}/s",
            *(f"{k} {v}" for k, v in self._values().items()),
        ]
        print(f"{self.desc}: {', '.join(parts)}", file=self.stream, flush=True)
