"""Unique tasks: one live task per signature, the database's unique key deciding.

``add(..., signature=S, unique=True)`` inserts a row whose ``unique_key`` is S.
The database computes ``live_key`` from it (S while the task is WAITING,
TO_RUN or RUNNING, NULL once it ended) and keeps that column unique
(``uq_taches_live_key``). Of two processes adding S at once, one inserts; the
other's insert waits for it, is refused, and reads the live task's id instead.
Nothing here or anywhere else clears the key: every path that ends a task
(its end, a rescue, a cancel, the fast completion, a delete or a purge) frees
S by changing the status or removing the row. A restart or a forced run that
would make a second live holder of S is refused (:func:`refused_when_held`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from ..exceptions import InvalidTransition
from ..status import Status
from . import statements as sql
from .inserting import InsertVerbs, inserted_id

#: Inserts tried while the holder keeps ending between our insert and our read.
ATTEMPTS = 10
#: The live holder, read with a share lock: MariaDB's locking read sees the latest
#: committed row whatever the transaction's snapshot (a plain read might not).
LIVE_HOLDER = select(sql.T.id).where(sql.T.live_key == bindparam("key")).with_for_update(read=True)


class UniqueVerbs(InsertVerbs):
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    def insert_unique(self, conn: Connection, values: dict[str, Any]) -> tuple[int, bool]:
        """Insert a task holding ``values["unique_key"]`` unless a live one holds it.

        Returns ``(id, True)`` for the new task, ``(id, False)`` for the live one.
        """
        for _ in range(ATTEMPTS):
            new_id = self._insert_if_free(conn, values)
            if new_id is not None:
                if values["status"] == Status.TO_RUN.value:
                    self.notify_added(conn, values["queue"])
                return new_id, True
            live = conn.execute(LIVE_HOLDER, {"key": values["unique_key"]}).scalar()
            if live is not None:
                return int(live), False
        raise InvalidTransition(f"signature {values['unique_key']!r} is taken and freed too fast")

    def _insert_if_free(self, conn: Connection, values: dict[str, Any]) -> int | None:
        """The new id, or None when a live task holds the key (portable: a savepoint).

        SQLite and PostgreSQL override it with ``ON CONFLICT DO NOTHING``.
        """
        try:
            with conn.begin_nested():
                return inserted_id(conn, values)
        except IntegrityError as exc:
            if not holds_live_key(exc):
                raise
            return None


def holds_live_key(exc: IntegrityError) -> bool:
    """Whether the database refused a second live holder of a unique signature."""
    return "live_key" in str(exc.orig)


@contextmanager
def refused_when_held(tache_id: int) -> Iterator[None]:
    """Make a task live again only if no other live task holds its signature."""
    try:
        yield
    except IntegrityError as exc:
        if not holds_live_key(exc):
            raise
        raise InvalidTransition(
            f"task {tache_id}: another live task holds its unique signature"
        ) from None
