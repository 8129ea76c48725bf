"""The store's insert strategy: new rows on the caller's connection, ids back in order.

``add()`` inserts on the *session's* connection (so ``commit=False`` enqueues in
the caller's transaction) with ``RETURNING id``: one statement for one row,
and for many rows the fastest ordered form each database has. This module
holds the portable forms; a database with a better one overrides
:meth:`InsertVerbs._insert_many` (SQLite's multi-row VALUES, PostgreSQL's
``unnest``) or :meth:`InsertVerbs._insert_one` (PostgreSQL's NOTIFY folded
into the INSERT).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import JSON, Connection, bindparam, insert, null, update
from sqlalchemy.sql.dml import Insert

from ..models import taches_table
from ..status import Status
from . import statements as sql
from .fast_add import FastAdd

ID = sql.T.id
INSERT_ONE: Insert = insert(taches_table).returning(ID)
INSERT_MANY: Insert = insert(taches_table).returning(ID, sort_by_parameter_order=True)
_LINK = (
    update(taches_table).where(bindparam("link_id") == ID).values(next_id=bindparam("link_next"))
)
_SET_FICHIER = (
    update(taches_table).where(bindparam("fichier_id") == ID).values(fichier=bindparam("name"))
)


class InsertVerbs:
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    @cached_property
    def fast_add(self) -> FastAdd:
        """``add()``'s fast path for one row (:mod:`.fast_add`)."""
        return FastAdd(self)

    def notify_added(self, conn: Connection, queue: str) -> None:
        """Wake idle managers after a task became ready (PostgreSQL only; others poll)."""

    def insert(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        """INSERT the rows on ``conn``; their ids in the rows' order.

        Idle managers are woken once per queue of the TO_RUN rows (at commit).
        """
        params = uniform([dict(row) for row in rows])
        queues = {row["queue"] for row in params if row["status"] == Status.TO_RUN.value}
        if len(params) == 1:
            tache_id, woken = self._insert_one(conn, params[0], wake=bool(queues))
            if woken:
                queues.clear()
            ids = [tache_id]
        else:
            ids = self._insert_many(conn, params)
        for queue in sorted(queues):
            self.notify_added(conn, queue)
        return ids

    def one_row(self, values: dict[str, Any], *, wake: bool) -> tuple[Insert, dict[str, Any], bool]:
        """The INSERT ... RETURNING of one row, its parameters, and whether it wakes managers."""
        return INSERT_ONE, values, False

    def _insert_one(
        self, conn: Connection, values: dict[str, Any], *, wake: bool
    ) -> tuple[int, bool]:
        """One row: its id, and whether the statement itself woke the managers."""
        if conn.dialect.insert_returning:
            statement, params, woken = self.one_row(values, wake=wake)
            return int(conn.execute(statement, params).scalar_one()), woken
        return inserted_id(conn, values), False

    def _insert_many(self, conn: Connection, params: list[dict[str, Any]]) -> list[int]:
        if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
            return [int(i) for i in conn.execute(INSERT_MANY, params).scalars()]
        # No ordered RETURNING for many rows (MySQL): one INSERT each, as the ORM does.
        return [inserted_id(conn, values) for values in params]

    def link_chain(self, conn: Connection, ids: Sequence[int]) -> None:
        """Point each task of a chain at the next one (one executemany)."""
        pairs = itertools.pairwise(ids)
        conn.execute(_LINK, [{"link_id": before, "link_next": after} for before, after in pairs])

    def set_fichier(self, conn: Connection, tache_id: int, name: str) -> None:
        """Record the name of a task's attached file (stored once its id is known)."""
        conn.execute(_SET_FICHIER, {"fichier_id": tache_id, "name": name})


def inserted_id(conn: Connection, values: dict[str, Any]) -> int:
    key = conn.execute(insert(taches_table), values).inserted_primary_key
    assert key is not None
    return int(key[0])


def uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row the same keys: one compiled INSERT serves them all.

    Rows built from strings share their keys already; a ``Tache`` may carry
    other columns. A missing JSON value is SQL NULL, as the ORM leaves it.
    """
    keys = rows[0].keys()
    if all(row.keys() == keys for row in rows):
        return rows
    every = set(itertools.chain.from_iterable(rows))
    filler = {key: null() if isinstance(taches_table.c[key].type, JSON) else None for key in every}
    return [{**filler, **row} for row in rows]
