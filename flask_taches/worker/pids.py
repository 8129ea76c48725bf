"""Forked children's pids on their way to the rows, taken along with the next claim.

A forked child does not open a connection to say it runs: its manager knows
the pid. The pid waits up to :data:`PID_DELAY` to ride in the next claim's
transaction, else it is written on its own. Until it lands the row has no
pid, and the manager beats for it (``beat_for_unstarted``); a failure costs
a rescue's pid check only.

What it spares is one write transaction per task; ``bench/fast_paths.py``
(``pid batching``, 300 tasks, medians of 3 on a loaded 2-core machine)
measured it at 6.3 ms on SQLite and 1.8 ms on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Seconds a forked child's pid may wait to be written with the next claim
#: (one transaction for both) before it is written on its own.
PID_DELAY = 0.05


class PendingPids:
    """``{task id: (attempt, pid)}`` not in their rows yet, and when they are due."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[int, int]] = {}
        #: Monotonic time by which they must be written, None when there are none.
        self.due: float | None = None

    def add(self, tache_id: int, attempt: int, pid: int, since: float) -> None:
        self._pending[tache_id] = (attempt, pid)
        if self.due is None:
            self.due = since + PID_DELAY

    def snapshot(self) -> dict[int, tuple[int, int]]:
        """The pids to write now (a copy: the write may fail)."""
        return dict(self._pending)

    def written(self, tache_ids: Iterable[int]) -> None:
        """These landed in their rows."""
        self._drop(tache_ids)

    def forget(self, tache_ids: Iterable[int]) -> None:
        """These children exited: their rows have ended or will, pid or not."""
        self._drop(tache_ids)

    def _drop(self, tache_ids: Iterable[int]) -> None:
        for tache_id in tache_ids:
            self._pending.pop(tache_id, None)
        if not self._pending:
            self.due = None

    def retry_at(self, when: float) -> None:
        """The write failed: try again at ``when``."""
        self.due = when
