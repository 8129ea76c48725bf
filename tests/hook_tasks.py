"""Tasks and end hooks for the signals and hooks tests: each writes a line to a file.

A line names the process that wrote it, so a test can tell where a hook or a
signal ran. The file is the task's ``path`` parameter (hooks read it from the
task they are given).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from flask_taches import Status, Tache
from tests.app import taches

#: Set by a test (or a manager's environment): the file the app's signal receivers write to.
SIGNAL_LOG_VARIABLE = "FT_TEST_SIGNAL_LOG"


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{line} pid={os.getpid()}\n")


def succeed(path: str) -> str:
    return "done"


def fail_always(path: str) -> None:
    raise RuntimeError("this task always fails")


def on_end(tache: Tache, status: Status) -> None:
    """A hook: what it was told, and what the row says, once recorded."""
    _append(
        tache.parametres["path"], f"hook {tache.id} {status.value} {tache.status} {tache.result}"
    )


def broken_hook(tache: Tache) -> None:
    _append(tache.parametres["path"], f"broken {tache.id}")
    raise RuntimeError("the hook itself fails")


def connect_receivers(app: Flask, path: str) -> None:
    """Every signal of ``app`` writes a line to ``path``."""
    from flask_taches.signals import tache_added, tache_finished, tache_started

    def added(sender: Flask, tache_id: int, method: str, queue: str, **_: Any) -> None:
        _append(path, f"added {tache_id} {method} {queue}")

    def started(sender: Flask, tache: Tache, attempt: int, **_: Any) -> None:
        _append(path, f"started {tache.id} {attempt}")

    def finished(sender: Flask, tache_id: int, attempt: int, status: Status, **_: Any) -> None:
        _append(path, f"finished {tache_id} {attempt} {status.value}")

    # Strong references held by the app: blinker keeps weak ones by default.
    app.extensions["tests.signal_receivers"] = (added, started, finished)
    tache_added.connect(added, app)
    tache_started.connect(started, app)
    tache_finished.connect(finished, app)


@taches.task(on_success=on_end, on_failure="tests.hook_tasks:broken_hook")
def decorated(path: str) -> str:
    """A ``@taches.task`` function whose end hooks are options of the decorator."""
    return "decorated"
