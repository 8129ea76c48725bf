"""Saving new tasks fast: checked once, inserted with Core, ids read back in order.

``add()`` used to go through the ORM's unit of work (one ``Tache`` object, a
flush, an identity map entry per row); that cost more than the INSERT itself.
Here a new task is a plain dict of column values, inserted on the *session's*
connection (so ``commit=False`` still enqueues in the caller's transaction),
with ``RETURNING id``: one statement for one row; for many rows, one
multi-row INSERT per 1,000 rows on SQLite, one ``INSERT ... SELECT FROM
unnest(arrays)`` on PostgreSQL, SQLAlchemy's ordered ``insertmanyvalues``
elsewhere. A :class:`Tache` the caller handed in gets its values and id back
and joins the session as a persistent object, as it did after a flush.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    cast,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import Null

from .exceptions import ParametresNotJSON
from .loading import check_allowed, locate
from .models import Tache, UTCDateTime, taches_table

#: Methods a :class:`CheckedMethods` remembers before it starts over (entries).
METHOD_CACHE_SIZE = 4096
#: Deepest nesting the quick JSON check walks; deeper data takes the full check.
JSON_QUICK_DEPTH = 64  # levels

_ID = taches_table.c.id
_INSERT_ONE: Insert = insert(taches_table).returning(_ID)
_INSERT_MANY: Insert = insert(taches_table).returning(_ID, sort_by_parameter_order=True)
# SQLite: SQLAlchemy has no ordered RETURNING there and would send one INSERT per
# row; a multi-row INSERT numbers its rows max(id)+1, +2... in VALUES order under
# the write lock, so the ids, sorted, are in the rows' order.
_INSERT_MANY_SQLITE: Insert = insert(taches_table).returning(_ID)
# PostgreSQL: the wake-up rides on the INSERT (an uncorrelated subquery runs
# once per statement) instead of costing its own round trip.
_INSERT_ONE_WAKE: Insert = insert(taches_table).returning(
    _ID,
    select(func.pg_notify(bindparam("wake_channel"), bindparam("wake_queue"))).scalar_subquery(),
)
_LINK = (
    update(taches_table)
    .where(taches_table.c.id == bindparam("link_id"))
    .values(next_id=bindparam("link_next"))
)
_NULL_ROW: dict[str, Any] = dict.fromkeys(taches_table.c.keys())
_SET_FICHIER = (
    update(taches_table)
    .where(taches_table.c.id == bindparam("fichier_id"))
    .values(fichier=bindparam("fichier_name"))
)


@dataclass
class NewRow:
    """A task about to be inserted: its column values, and the caller's object if any."""

    values: dict[str, Any]
    tache: Tache | None = None


class CheckedMethods:
    """Methods one app already accepted, by allowlist.

    Checking a method imports its module and walks to the attribute; a bulk
    ``add_many()`` of one method paid that per row. The allowlist is part of
    the key, so a changed ``TACHES_ALLOWED_MODULES`` is checked afresh. Only
    successes are kept: a refused method is refused again, with its message.
    """

    def __init__(self, limit: int = METHOD_CACHE_SIZE) -> None:
        self._limit = limit
        self._accepted: set[tuple[str, tuple[str, ...]]] = set()

    def check(self, method: str, allowed: Sequence[str]) -> None:
        """Raise :class:`MethodRefused` or :class:`MethodNotFound`, or return."""
        if not isinstance(method, str):
            check_allowed(method, allowed)  # raises the one-line "not a string" error
        key = (method, tuple(allowed))
        if key in self._accepted:
            return
        check_allowed(method, key[1])  # refused by name: nothing imported
        locate(method, key[1])  # the walk confined to the allowlist too
        if len(self._accepted) >= self._limit:
            self._accepted.clear()  # a dynamic method per call must not grow memory
        self._accepted.add(key)


def json_object(name: str, value: Any) -> dict[str, Any]:
    """Check that ``value`` is a JSON object the task will see unchanged.

    Plain dicts, lists, str, int, bool, None and finite floats are accepted by
    a quick walk; anything else (a tuple, a subclass, a non-str key...) takes
    the full check, a JSON round trip compared with the original.
    """
    if value is None:
        return {}
    if type(value) is dict and (not value or _plain(value, JSON_QUICK_DEPTH)):
        return value
    if not isinstance(value, dict):
        raise ParametresNotJSON(f"{name} must be a dict, not {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParametresNotJSON(f"{name} is not JSON: {exc}") from exc
    if json.loads(text) != value:
        # e.g. int keys become strings, tuples become lists: the task would see other data
        raise ParametresNotJSON(f"{name} does not survive a JSON round trip (keys must be str)")
    return value


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is made only of types JSON gives back as they are."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth <= 0:
        return False  # maybe a cycle: the full check says so properly
    if kind is dict:
        return all(type(k) is str and _plain(v, depth - 1) for k, v in value.items())
    if kind is list:
        return all(_plain(v, depth - 1) for v in value)
    return False


def insert_rows(
    conn: Connection, rows: Sequence[NewRow], *, wake_channel: str | None = None
) -> list[int]:
    """INSERT the rows on ``conn`` and return their ids, in the rows' order.

    ``wake_channel`` (PostgreSQL, one row): NOTIFY it with the row's queue in
    the same statement; the caller then sends no separate wake-up.
    """
    params = _uniform([row.values for row in rows])
    dialect = conn.dialect
    if len(params) == 1:
        if wake_channel is not None:
            wake = {"wake_channel": wake_channel, "wake_queue": params[0]["queue"]}
            return [int(conn.execute(_INSERT_ONE_WAKE, {**params[0], **wake}).scalar_one())]
        if dialect.insert_returning:
            return [int(conn.execute(_INSERT_ONE, params[0]).scalar_one())]
        return [_inserted_id(conn, params[0])]
    if dialect.name == "postgresql":
        return _insert_many_postgresql(conn, params)
    if dialect.name == "sqlite" and dialect.insert_executemany_returning:
        ids = sorted(int(i) for i in conn.execute(_INSERT_MANY_SQLITE, params).scalars())
        if ids[-1] - ids[0] + 1 != len(ids):
            # Only when the largest rowid is taken: SQLite then picks them at random.
            raise RuntimeError("SQLite gave non-consecutive ids to one insert: not saved")
        return ids
    if dialect.insert_executemany_returning_sort_by_parameter_order:
        return [int(i) for i in conn.execute(_INSERT_MANY, params).scalars()]
    # No ordered RETURNING for many rows (MySQL): one INSERT each, as the ORM does.
    return [_inserted_id(conn, values) for values in params]


def _insert_many_postgresql(conn: Connection, params: list[dict[str, Any]]) -> list[int]:
    """One ``INSERT ... SELECT FROM unnest(<one array per column>)`` for all the rows.

    The multi-row VALUES form sends 14 placeholders a row, and the driver
    parses that text again for every 1,000 rows; one array per column keeps
    the statement short. Rows are inserted ``ORDER BY`` their position, so
    the sequence hands them increasing ids: sorted, the ids are in the rows'
    order (what SQLAlchemy's own ordered RETURNING relies on there).
    """
    keys = list(params[0])
    arrays = [
        bindparam(f"u_{key}", *_pg_array(conn, key, [row[key] for row in params])) for key in keys
    ]
    rows = func.unnest(*arrays).table_valued(*keys, with_ordinality="n").render_derived("u")
    columns = [cast(rows.c[k], JSONB) if _is_json(k) else rows.c[k] for k in keys]
    query = insert(taches_table).from_select(keys, select(*columns).order_by(rows.c.n))
    return sorted(int(i) for i in conn.execute(query.returning(_ID)).scalars())


def _is_json(key: str) -> bool:
    return isinstance(taches_table.c[key].type, JSON)


def _pg_array(conn: Connection, key: str, values: list[Any]) -> tuple[list[Any], ARRAY[Any]]:
    """One column as an array and its type: JSON as text, datetimes as naive UTC."""
    kind = taches_table.c[key].type
    if isinstance(kind, JSON):
        # JSON text, cast to JSONB in the SELECT; a filler null() is SQL NULL.
        texts = [None if isinstance(v, Null) else json.dumps(v) for v in values]
        return texts, ARRAY(String)
    if isinstance(kind, UTCDateTime):
        naive = [kind.process_bind_param(v, conn.dialect) for v in values]
        return naive, ARRAY(kind.impl)
    if isinstance(kind, (Integer, Float, String)):
        return values, ARRAY(kind)
    raise TypeError(f"no array type for column {key} ({kind!r})")


def _inserted_id(conn: Connection, values: dict[str, Any]) -> int:
    key = conn.execute(insert(taches_table), values).inserted_primary_key
    assert key is not None
    return int(key[0])


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row the same keys: one compiled INSERT serves them all.

    Rows built from strings share their keys already; a :class:`Tache` may carry
    other columns. A missing JSON value is SQL NULL, as the ORM leaves it.
    """
    keys = rows[0].keys()
    if all(row.keys() == keys for row in rows):
        return rows
    every = set(itertools.chain.from_iterable(rows))
    filler = {key: null() if isinstance(taches_table.c[key].type, JSON) else None for key in every}
    return [{**filler, **row} for row in rows]


def link_chain(conn: Connection, ids: Sequence[int]) -> None:
    """Point each task of a chain at the next one (one executemany)."""
    pairs = itertools.pairwise(ids)
    conn.execute(_LINK, [{"link_id": before, "link_next": after} for before, after in pairs])


def set_fichier(conn: Connection, tache_id: int, name: str) -> None:
    conn.execute(_SET_FICHIER, {"fichier_id": tache_id, "fichier_name": name})


def adopt(session: Session, rows: Sequence[NewRow], ids: Sequence[int]) -> list[Tache]:
    """Give each caller's :class:`Tache` its stored values and id, persistent in ``session``.

    As after an ORM flush: the object is in the identity map (``taches.get(id)``
    is that object) and, once committed, expired like any other.
    """
    adopted = []
    for row, tache_id in zip(rows, ids, strict=True):
        tache = row.tache
        if tache is None:
            continue
        # The whole row, as a load would give it (NULL where nothing was set);
        # make_transient_to_detached() then takes it as the committed state,
        # with no history and nothing left expired to load again.
        loaded = instance_dict(tache)
        loaded.update(_NULL_ROW)
        loaded.update(row.values)
        loaded["id"] = tache_id
        make_transient_to_detached(tache)
        session.add(tache)
        adopted.append(tache)
    return adopted


def disown(session: Session, taches: Sequence[Tache]) -> None:
    """Undo :func:`adopt` when the insert is rolled back: the objects are new again."""
    for tache in taches:
        if tache in session:
            session.expunge(tache)
        make_transient(tache)
        set_committed_value(tache, "id", None)
