"""Tasks of the fault tier: hostile ones, and ones that count their runs in a file.

They run in a manager's children, so they speak to the test through files
(appended with ``O_APPEND``, a line at a time) and the database only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from flask_taches import Tache
from tests.manager_tasks import _append


def counted(path: str, tache: Tache, seconds: float = 0.0) -> int:
    """Append ``<id> <attempt>`` (a run, counted outside the table), after ``seconds``."""
    if seconds:
        time.sleep(seconds)
    _append(path, f"{tache.id} {tache.attempts}\n")
    return tache.id


def exit_at_once() -> None:
    """Leaves without a word: no end recorded, no exception."""
    os._exit(0)


def raise_system_exit() -> None:
    raise SystemExit(3)


def leave_a_process(path: str) -> str:
    """Starts a process that outlives the task, and writes its pid to ``path``."""
    process = subprocess.Popen(["sleep", "120"], stdin=subprocess.DEVNULL)
    _append(path, f"{process.pid}\n")
    return "left one"


def close_every_descriptor() -> str:
    """Closes all its file descriptors, the standard streams and the database's included."""
    os.closerange(0, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    return "closed"


def flood_stdout(megabytes: int = 50) -> str:
    """Prints ``megabytes`` MB to its stdout (and a little to its stderr)."""
    line = "x" * 1023 + "\n"
    for _ in range(megabytes * 1024):
        sys.stdout.write(line)
    sys.stdout.flush()
    sys.stderr.write("flooded\n")
    return "printed"


def big_result(megabytes: int = 20) -> str:
    return "r" * (megabytes * 1024 * 1024)


def many_logs(tache: Tache, count: int = 3000) -> int:
    for n in range(count):
        tache.log("info", f"line {n}")
    return count


def log_and_report(tache: Tache, lines: int = 20) -> int:
    """Logs ``lines`` lines and reports progress after each: a task the pages show live."""
    for n in range(lines):
        tache.log("info", f"step {n} of {lines}")
        tache.set_progress(n + 1, lines, label=f"step {n + 1}")
    return lines


def steps(path: str, tache: Tache, first: int = 200, later: int = 10) -> int:
    """Works in 50 ms steps (``first`` on attempt 1, ``later`` after), then appends its run.

    Counted in steps, not by the clock: a process frozen midway still has
    its remaining steps to do when it resumes, so its fencing stops it first.
    """
    count = first if tache.attempts == 1 else later
    for _ in range(count):
        time.sleep(0.05)
    _append(path, f"{tache.id} {tache.attempts}\n")
    return count


def log_much(tache: Tache, lines: int = 50, width: int = 500) -> int:
    """Logs ``lines`` lines of ``width`` characters: a task that fills a small disk."""
    for n in range(lines):
        tache.log("info", f"{n:04d} " + "d" * width)
    return lines
