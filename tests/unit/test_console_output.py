"""The console where it is not a terminal, on a narrow one, and under a manager."""

from __future__ import annotations

import io
import os
import re

import pytest

from flask_taches.console import CLEAR_LINE, PLAIN_PROGRESS_EVERY, Console

STEPS = 5000
#: logging's default asctime, then the task's id: the manager's own line format.
MANAGER_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} task 7: ")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress(step: int, maximum: int = STEPS) -> dict[str, object]:
    percent = 100.0 * step / maximum
    return {"step": step, "max": maximum, "phase": 1, "phases": 1, "percent": percent}


def test_a_5000_step_task_prints_a_progress_line_per_interval_and_its_last_state() -> None:
    out, clock = io.StringIO(), FakeClock()
    console = Console(2, out, tty=False, clock=clock)
    seconds = 5.0
    for step in range(1, STEPS + 1):
        console.progress(progress(step))
        clock.now += seconds / STEPS
    console.ended(7, "COMPLETED", seconds)

    lines = [line for line in out.getvalue().splitlines() if line.startswith("progress")]
    # One at the start, one per interval, then the last state before the end line.
    assert len(lines) == int(seconds // PLAIN_PROGRESS_EVERY) + 2
    assert lines[0] == "progress   0.0% 1/5000"
    assert lines[-1] == "progress 100.0% 5000/5000"
    assert out.getvalue().splitlines()[-1] == "task 7 COMPLETED in 5.00 s"


def test_a_held_progress_line_comes_before_the_next_log_line() -> None:
    out, clock = io.StringIO(), FakeClock()
    console = Console(2, out, tty=False, clock=clock)
    console.progress(progress(1, 3))
    console.progress(progress(2, 3))
    console.log({"level": "warning", "message": "late", "at": None})

    lines = out.getvalue().splitlines()
    assert lines[:2] == ["progress  33.3% 1/3", "progress  66.7% 2/3"]
    assert lines[2].endswith("WARNING  late")


@pytest.mark.parametrize("columns", [20, 40, 60, 200])
def test_the_bar_fits_the_terminal(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    console = Console(2, out, tty=True, colour=False)
    console.progress({**progress(2500), "label": "a label that takes some room"})

    (drawn,) = out.getvalue().split(CLEAR_LINE)[1:]
    assert len(drawn) < columns, "a line that wraps cannot be redrawn in place"
    assert drawn.startswith("[") == (columns >= 60)  # else the text alone, cut to fit


def test_under_a_manager_every_line_is_in_its_format_with_the_task_id() -> None:
    out = io.StringIO()
    console = Console(2, out, tty=True, colour=True, task_id=7)
    console.started(7, "tests.tasks:slow", 1, {})
    console.log({"level": "error", "message": "boom", "at": None})
    console.progress(progress(10))
    console.ended(7, "FAILED", 1.0)

    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert all(MANAGER_LINE.match(line) for line in lines), lines
    assert lines[0].endswith(f"task 7: started: tests.tasks:slow (attempt 1, pid {os.getpid()})")
    assert lines[1].endswith("task 7: ERROR    boom")
    assert lines[3].endswith("task 7: FAILED in 1.00 s")
    assert "\033[" not in out.getvalue(), "no colour nor bar: many tasks share the stream"
