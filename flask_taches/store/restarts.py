"""Restart: a finished task back to TO_RUN, for a fresh round of its attempts.

The attempt count goes on (a late process of an old attempt stays fenced
out); ``restart_base`` marks where the new round begins, so ``max_attempts``
means the same after a restart as before it and is never changed. A
``run_at`` still in the future is kept. The plan is
:func:`flask_taches.lifecycle.restart`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lifecycle
from ..clock import utcnow
from ..exceptions import InvalidTransition, no_such_task
from ..status import Status
from . import statements as sql

if TYPE_CHECKING:
    from .base import Store


class RestartVerbs:
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    def _store(self) -> Store:
        return self  # type: ignore[return-value]

    def restart(self, tache_id: int) -> None:
        """Put a finished task back to TO_RUN; :class:`InvalidTransition` if it is not."""
        store = self._store()
        with store.write() as conn:
            row = store.lock_row(conn, tache_id)
            if row is None:
                raise no_such_task(tache_id)
            plan = lifecycle.restart(
                Status(row["status"]),
                int(row["attempts"] or 0),
                int(row["max_attempts"] or 1),
                utcnow(),
                run_at=row["run_at"],
            )
            if plan is None:
                raise InvalidTransition(f"task {tache_id} is {row['status']}: nothing to restart")
            sql.update_row(
                conn,
                tache_id,
                status=sql.TO_RUN,
                run_at=plan.run_at,
                restart_base=plan.restart_base,
                ended_at=None,
                result=None,
                pid=None,
                heartbeat_at=None,
                cancel_requested_at=None,
                cancel_requested_by=None,
                logs=[*(row["logs"] or []), *plan.entries],
            )
            store.notify_added(conn, row["queue"])
