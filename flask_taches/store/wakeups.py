"""What an idle manager sleeps on: the poll timer, or a database's own wake-up source.

:meth:`WakeSource.wait` returns True when work may have arrived (notified, or
a change seen), False when ``timeout`` passed or ``wake_fd`` became readable
(the manager's own signals and children write there). Each database's module
has its source: SQLite watches its files, PostgreSQL LISTENs; others poll.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence
from dataclasses import dataclass


def readable(fds: Sequence[int | None], timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for one of ``fds`` to be readable; the readable ones."""
    wanted = [fd for fd in fds if fd is not None]
    if not wanted:
        time.sleep(max(0.0, timeout))
        return []
    ready, _, _ = select.select(wanted, [], [], max(0.0, timeout))
    return ready


@dataclass(frozen=True)
class WaitingFor:
    """What an idle manager waits for: a task of ``queues`` (None: any) and a slot free."""

    queues: Sequence[str] | None = None
    #: RUNNING tasks of all managers at which no slot is free (None: no limit).
    max_running: int | None = None
    #: TACHES_POLL: how often a source that has to look for work (MySQL) looks.
    poll: float = 0.2


class WakeSource:
    """The poll timer alone: waits for the timeout or the wake-up fd."""

    #: Whether every commit that makes work ready wakes the wait (a file watch, LISTEN):
    #: then an idle manager polls only every TACHES_IDLE_POLL seconds.
    trusted = False

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        readable([wake_fd], timeout)
        return False

    def close(self) -> None:
        """Release what the source holds (nothing here)."""
