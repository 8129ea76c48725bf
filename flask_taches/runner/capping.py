"""What a task may store, capped: its log entries (``TACHES_MAX_LOGS``), its result
(``TACHES_MAX_RESULT_SIZE``), and each log message's length.

Unbounded, a task printing in a loop or returning a huge value would make
every live write heavier, and its end may not fit in one statement at all
(MariaDB's ``max_allowed_packet`` drops the connection): the end would then
never be stored, and the task run again. Capped, the same on every database,
the task says what was left out, in its own logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..lifecycle import LogEntry

#: Characters kept of one log message (a task logging a whole file, say).
MAX_MESSAGE = 16 * 1024


def size_in_words(size: int) -> str:
    """``20971520`` -> ``20.0 MB``; bytes below a kilobyte."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def json_size(value: Any) -> int:
    """Bytes of ``value`` as stored JSON (what the database is sent); -1: not JSON."""
    try:
        return len(json.dumps(value, default=str).encode())
    except (TypeError, ValueError):
        return -1


def oversized_result(result: Any, limit: int | None) -> str | None:
    """Why ``result`` may not be stored (too big), or None when it fits."""
    if limit is None or result is None:
        return None
    size = json_size(result)
    if size <= limit:
        return None
    return (
        f"the result is {size_in_words(size)}, over TACHES_MAX_RESULT_SIZE"
        f" ({size_in_words(limit)}): not stored"
    )


def shortened(entry: LogEntry) -> LogEntry:
    """The entry with its message cut at :data:`MAX_MESSAGE` characters, saying so."""
    message = entry.get("message")
    if not isinstance(message, str) or len(message) <= MAX_MESSAGE:
        return entry
    cut = f"{message[:MAX_MESSAGE]}... [{len(message) - MAX_MESSAGE} more characters left out]"
    return {**entry, "message": cut}


@dataclass
class LogCap:
    """Keeps at most ``limit`` entries: the first ``limit - 1``, then one that counts the rest."""

    limit: int
    left_out: int = 0

    def admit(self, logs: list[LogEntry], entry: LogEntry) -> bool:
        """Append ``entry`` to ``logs`` if there is room; else count it. True when kept."""
        if len(logs) < max(1, self.limit) - 1:
            logs.append(shortened(entry))
            return True
        self.left_out += 1
        return False

    def note(self, now_entry: Any) -> LogEntry | None:
        """The closing entry that says how many were left out (None: nothing was)."""
        if not self.left_out:
            return None
        return now_entry(
            "warning",
            f"{self.left_out} more log entries left out (TACHES_MAX_LOGS={self.limit})",
        )
