"""Step-by-step progress lines for long jobs (Spark's own bar shows per-stage progress on a terminal)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Steps:
    """Prints ``[i/n] what ... done in s`` for each step of a job, to stderr."""

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.done += 1
        print(f"[{self.done}/{self.total}] {what} ...", file=self.stream, flush=True)
        start = time.perf_counter()
        yield
        print(
            f"[{self.done}/{self.total}] {what}: done in {time.perf_counter() - start:.1f}s",
            file=self.stream,
            flush=True,
        )
