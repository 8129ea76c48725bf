"""What follows a task's final end: the next task of its chain, or its group's callback.

A chain links each task to the next by ``next_id``. A group links every
member to one callback, which holds in ``waits_for`` how many members have
not completed. When a task ends for good:

* COMPLETED: a chain's next task is released; a group's callback has one
  member less to wait for, and is released when none is left. Released, it
  gets the results before it as its parameter ``previous`` (a chain: the one
  result; a group: the list, in the group's order);
* any other end: the next task, and the chain after it, is CANCELLED with a
  log saying why.

Members of one group may end at the same moment in processes on different
hosts. Each one's end takes the callback's row lock (the ``UPDATE`` of its
count) in the same transaction as its own row's end, so the ends are
serialised on the callback: the member that takes the count to 0 sees every
other member's end committed, and it alone releases the callback. The
members' results are then read with a locking read, which sees the latest
committed rows on MariaDB too (a plain read would see its snapshot).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from .. import lifecycle
from ..models import taches_table
from ..status import Status
from . import statements as sql

if TYPE_CHECKING:
    from .base import Store

T = sql.T
_WAITING = Status.WAITING.value


class ChainVerbs:
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    def _store(self) -> Store:
        return self  # type: ignore[return-value]

    def link_group(self, conn: Connection, members: list[int], callback: int) -> None:
        """Point each member at the callback, which waits for all of them."""
        conn.execute(update(taches_table).where(T.id.in_(members)).values(next_id=callback))
        sql.update_row(conn, callback, waits_for=len(members))

    def _follow_chain(
        self, conn: Connection, step: lifecycle.ChainStep | None, now: datetime
    ) -> None:
        """Release the next task (or count a group member done), or cancel the rest."""
        if step is None:
            return
        if step.release:
            self._completed_before(conn, step.next_id, now)
        else:
            self._cancel_after(conn, step, now)

    def _completed_before(self, conn: Connection, next_id: int, now: datetime) -> None:
        store = self._store()
        # The UPDATE takes the row lock: members ending together are serialised here.
        conn.execute(
            update(taches_table)
            .where((T.id == next_id) & (T.status == _WAITING) & T.waits_for.is_not(None))
            .values(waits_for=T.waits_for - 1)
        )
        row = store.lock_row(conn, next_id)
        if (
            row is None
            or row["status"] != _WAITING
            or not lifecycle.group_complete(row["waits_for"])
        ):
            return
        results = list(
            conn.execute(
                select(T.result).where(T.next_id == next_id).order_by(T.id).with_for_update()
            ).scalars()
        )
        parametres = dict(row["parametres"] or {})
        parametres["previous"] = lifecycle.previous_value(row["waits_for"], results)
        sql.update_row(
            conn,
            next_id,
            status=sql.TO_RUN,
            # Not before its own run_at, if that is later.
            run_at=lifecycle.released_run_at(row["run_at"], now),
            parametres=parametres,
        )
        store.notify_added(conn, row["queue"])

    def _cancel_after(self, conn: Connection, step: lifecycle.ChainStep, now: datetime) -> None:
        store = self._store()
        current: int | None = step.next_id
        seen: set[int] = set()
        reason = step.reason
        while current is not None and current not in seen:
            seen.add(current)
            row = store.lock_row(conn, current)
            if row is None or row["status"] != _WAITING:
                return
            if current == step.next_id and row["waits_for"] is not None:
                reason = step.group_reason
            entry = lifecycle.log_entry("warning", reason, now)
            sql.update_row(
                conn,
                current,
                status=Status.CANCELLED.value,
                ended_at=now,
                logs=_with_entry(row, entry),
            )
            current = row["next_id"]
            reason = step.reason


def _with_entry(row: dict[str, Any], entry: dict[str, Any]) -> list[Any]:
    return [*(row["logs"] or []), entry]
