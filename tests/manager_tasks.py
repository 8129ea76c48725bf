"""Task callables the manager's tests and the benchmark add by dotted path.

They run in the manager's children (forked or spawned), so they talk to the
outside world through files and the database only.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from flask_taches import Tache


def noop() -> None:
    """Does nothing: what the benchmark drains."""


def append_line(path: str, db: SQLAlchemy, tache: Tache, pause: float = 0.0) -> int:
    """Append ``<id> <RUNNING count seen>`` to ``path``; O_APPEND keeps lines whole."""
    with db.engine.connect() as conn:
        running = int(
            conn.execute(text("SELECT count(*) FROM taches WHERE status = 'RUNNING'")).scalar_one()
        )
    if pause:
        time.sleep(pause)
    _append(path, f"{tache.id} {running}\n")
    return running


def sleep_then_append(path: str, tache: Tache, seconds: float) -> None:
    """Sleep, then append the task's id and attempt: a task that is killed midway."""
    time.sleep(seconds)
    _append(path, f"{tache.id} {tache.attempts}\n")


def hang(seconds: float = 3600.0) -> None:
    """Never ends on its own (in time): for timeouts and cancels."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def ignore_sigterm_and_hang(seconds: float = 3600.0) -> None:
    """A stubborn task: only SIGKILL stops it (the manager's backstop)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hang(seconds)


def record(path: str, tache: Tache) -> None:
    """Append the task's id: the order tasks ran in."""
    _append(path, f"{tache.id}\n")


def record_pid(path: str, tache: Tache) -> None:
    """Append the task's id and the pid of the process it ran in."""
    _append(path, f"{tache.id} {os.getpid()}\n")


_KEPT: list[bytes] = []


def grow(path: str, tache: Tache, megabytes: int) -> None:
    """Keep ``megabytes`` of touched memory for the life of the process (a leak)."""
    _KEPT.append(b"\x01" * (megabytes * 1024 * 1024))
    record_pid(path, tache)


def exit_abruptly(code: int = 3) -> None:
    """Leave without recording an end (as a C extension calling exit() would)."""
    os._exit(code)


def segfault() -> None:
    """Crash the task's process with SIGSEGV."""
    ctypes.string_at(0)


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_lines(path: str | Path) -> list[str]:
    """The lines a task wrote (for the tests), or none yet."""
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


def stuck_in_c() -> None:
    """Hold the GIL in C code (catastrophic regex backtracking): nothing in the
    process runs Python any more, not even the runner's watchdog thread, so only
    the manager's SIGKILL ends it."""
    import re

    re.match(r"(a+)+$", "a" * 64 + "b")
