"""``add()``'s fast path: one new row committed at once on a bare DBAPI connection.

The plain path (:func:`~flask_taches.service.adding.save`: the store's INSERT
on the session's connection, then ``session.commit()``) spends about as much
CPU in the session, the connection's events and the statement's execution
context as the INSERT and its COMMIT take. When nothing can tell the two
apart, :class:`FastAdd` runs the same INSERT ... RETURNING (the store's
:meth:`~.inserting.InsertVerbs.one_row`, NOTIFY included on PostgreSQL),
compiled once, on a connection of the application's own engine (so at its own
durability: its pool, its PRAGMAs), and commits it.

The service takes it only when the plain path would commit this one row and
nothing else: ``commit=True``, one task given as a method string, no file,
and a session with no transaction open. Anything else, a dialect without
``RETURNING`` (MySQL), or an error before the COMMIT, is the plain path's.

``bench/side_by_side.py`` measures ``add()`` beside the bare INSERT + COMMIT
of the same row and Huey's enqueue, in one run.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from .fast import Prepared

if TYPE_CHECKING:
    from .inserting import InsertVerbs


class FastAdd:
    """One row's INSERT ... RETURNING and COMMIT on a bare DBAPI connection."""

    def __init__(self, store: InsertVerbs) -> None:
        self.store = store
        self._prepared: dict[tuple[Any, ...], Prepared] = {}

    def insert(self, engine: Engine, values: dict[str, Any], *, wake: bool) -> int | None:
        """The id of the row, committed; None when the plain path must do it (nothing done)."""
        dialect = engine.dialect
        if not dialect.insert_returning:
            return None
        statement, params, _woken = self.store.one_row(values, wake=wake)
        key = (dialect, statement, tuple(params))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(statement, dialect, list(params))
        args = prepared.parameters(params)
        error = dialect.loaded_dbapi.Error
        try:
            raw = engine.raw_connection()
        except error:
            return None  # the plain path tries again, and raises as SQLAlchemy does
        try:
            try:
                cursor = raw.cursor()
                cursor.execute(prepared.sql, args)
                returned: Any = cursor.fetchone()
                tache_id = int(returned[0])
                cursor.close()
            except error:
                with suppress(error):
                    raw.rollback()
                return None  # nothing committed: the plain path decides
            try:
                raw.commit()
            except error as exc:  # committed or not, nobody knows: not tried again
                raise DBAPIError.instance(prepared.sql, args, exc, error, dialect=dialect) from exc
            return tache_id
        finally:
            raw.close()
