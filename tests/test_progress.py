"""Progress over many units: plain lines when stderr is not a terminal (no ``\\r`` redraws in a log)."""

import io
import re

from spark_recs.progress import Progress

LINE = r"fit: (\d+)/10 batches \((\d+)%\) in \d+\.\ds, [\d,]+ batches/s"


def test_plain_lines_count_the_units_and_show_the_latest_values():
    out = io.StringIO()  # not a terminal, like a redirected log
    with Progress(10, "fit", "batches", every=0.0, stream=out) as progress:
        for step in range(1, 6):
            progress.update(2, loss=1.0 / step, epoch=step)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 6  # one per update (every=0) and the final one
    for line, done in zip(lines, [2, 4, 6, 8, 10, 10]):
        match = re.match(LINE, line)
        assert match and int(match[1]) == done and int(match[2]) == 10 * done, line
    assert lines[0].endswith(", loss 1, epoch 1") and lines[-1].endswith(", loss 0.2, epoch 5")


def test_short_work_prints_nothing_until_the_end_and_values_are_read_only_when_shown():
    calls = []

    def loss() -> float:
        calls.append(1)
        return 0.5

    out = io.StringIO()
    progress = Progress(10, "fit", "batches", stream=out)  # a line every 20 s at most
    for _ in range(10):
        progress.update(loss=loss)
    assert out.getvalue() == "" and calls == []
    progress.close()
    assert re.fullmatch(LINE + r", loss 0.5\n", out.getvalue()) and calls == [1]

    quiet = io.StringIO()
    with Progress(10, "fit", "batches", every=0.0, final=False, enabled=False, stream=quiet) as off:
        off.update(10, loss=loss)
    assert quiet.getvalue() == "" and calls == [1]
