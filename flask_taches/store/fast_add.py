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

from ..models import taches_table
from .fast import Prepared

if TYPE_CHECKING:
    from .inserting import InsertVerbs


class FastAdd:
    """One row's INSERT ... RETURNING and COMMIT on a bare DBAPI connection."""

    def __init__(self, store: InsertVerbs) -> None:
        self.store = store
        self._prepared: dict[tuple[Any, ...], tuple[Prepared, dict[str, Any]] | None] = {}

    def insert(self, engine: Engine, values: dict[str, Any], *, wake: bool) -> int | None:
        """The id of the row, committed; None when the plain path must do it (nothing done)."""
        dialect = engine.dialect
        if not dialect.insert_returning:
            return None
        statement, params, _woken = self.store.one_row(values, wake=wake)
        key = (dialect, statement, tuple(params))
        if key not in self._prepared:
            self._prepared[key] = self._prepare(statement, dialect, params)
        found = self._prepared[key]
        if found is None:
            return None
        prepared, defaults = found
        args = prepared.parameters({**defaults, **params})
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

    @staticmethod
    def _prepare(
        statement: Any, dialect: Any, params: dict[str, Any]
    ) -> tuple[Prepared, dict[str, Any]] | None:
        """The statement compiled for these keys, and the Python-side column defaults it
        needs (SQLAlchemy computes those at execution); None if one is not a plain value."""
        defaults = {}
        for column in taches_table.c:
            default = column.default
            if column.key in params or default is None:
                continue
            if not getattr(default, "is_scalar", False):
                return None  # a callable or a sequence: the plain path computes it
            defaults[column.key] = default.arg  # type: ignore[attr-defined]
        return Prepared(statement, dialect, [*params, *defaults]), defaults
