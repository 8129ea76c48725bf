"""Process titles, so that ``ps`` and ``top`` tell a manager from each task's process.

With the ``setproctitle`` package installed (the ``proctitle`` extra), a
manager shows as ``flask-taches manager myapp: max 5, fork, all queues`` and a
task's process as ``flask-taches task 18 shop.jobs:resize``; without it nothing
changes. A title is what the kernel reports as the command line
(``/proc/PID/cmdline``): on Linux it replaces the arguments in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .console import printable

_setproctitle: Any
try:
    import setproctitle as _setproctitle
except ImportError:  # the extra is optional
    _setproctitle = None


def available() -> bool:
    return _setproctitle is not None


def set_title(title: str) -> None:
    if _setproctitle is not None:
        _setproctitle.setproctitle(printable(title))


@contextlib.contextmanager
def titled(title: str) -> Iterator[None]:
    """``title`` for the block, then the previous one back (a pool child goes on)."""
    if _setproctitle is None:
        yield
        return
    previous = _setproctitle.getproctitle()
    set_title(title)
    try:
        yield
    finally:
        _setproctitle.setproctitle(previous)


def manager_title(app: str | None, max_running: int, executor: str, queues: Sequence[str]) -> str:
    where = f" {app}" if app else ""
    served = ", ".join(queues) if queues else "all queues"
    return f"flask-taches manager{where}: max {max_running}, {executor}, {served}"


def task_title(tache_id: Any, method: str) -> str:
    return f"flask-taches task {tache_id} {method}"
