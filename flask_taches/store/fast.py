"""The store's fast paths for a forked task's process, each with the plain path beside it.

A no-op task forked from a warm manager costs a few milliseconds in all; a
statement run through SQLAlchemy in a fresh process costs about as much
again, mostly in the pages of the parent's memory that its first execution
touches (so copies). Two seams spare it:

* :class:`FastCompletion`: the COMPLETED end, the commonest write of a task's
  life, as one statement compiled in the manager and run on a bare DBAPI
  cursor. When it changes nothing (fenced out, a chain follows, a cancel was
  asked) or fails, :meth:`Store.record_end` takes the plain locked path,
  which decides every case; the fast one only ever commits a row that matched.
* :func:`warm_up`: the manager runs each statement of a task's process once,
  on a row that does not exist, so that its children inherit SQLAlchemy's
  compiled-statement cache instead of compiling in each child.

``bench/fast_paths.py`` measures each against its plain path in one run (forked
children recording a COMPLETED end, one at a time, 2 cores, medians of 3):

==========================  =================  ===================
per child (wall, CPU)       SQLite             PostgreSQL
==========================  =================  ===================
fast completion, warm       21.0 ms, 14.9 ms   30.2 ms, 16.0 ms
plain locked path           31.6 ms (1.51x)    44.6 ms (1.48x)
no warm-up                  30.7 ms (1.46x)    36.7 ms (1.22x)
==========================  =================  ===================

The warm-up costs one round of statements per manager, not per task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import configure_mappers
from sqlalchemy.pool import NullPool

from ..clock import utcnow
from ..models import taches_table
from ..status import Status
from . import statements as sql

if TYPE_CHECKING:
    from .base import Store

T = sql.T

#: Pools a forked child inherited: kept referenced so that the child never
#: finalizes (closes) a connection that belongs to its parent.
_INHERITED_POOLS: list[Any] = []


class Prepared:
    """A statement compiled once for a dialect, then run on a bare DBAPI cursor."""

    def __init__(self, statement: Any, dialect: Any, column_keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        self._positions: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if dialect.positional else None
        )
        self._processors: dict[str, Callable[[Any], Any]] = {}
        #: The values the statement itself fixes, processed here once.
        self._fixed: dict[str, Any] = {}
        rendered = set(compiled.bind_names.values())
        for name, bind in compiled.binds.items():
            if name not in rendered:
                continue  # an anonymous parameter's key before naming
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor
            if not bind.required:
                value = bind.effective_value
                self._fixed[name] = processor(value) if processor is not None else value

    def parameters(self, values: Mapping[str, Any]) -> Any:
        """What the DBAPI cursor takes for ``values`` (the statement's bindparam names)."""
        params = dict(self._fixed)
        for name, value in values.items():
            processor = self._processors.get(name)
            params[name] = processor(value) if processor is not None else value
        if self._positions is None:
            return params
        return tuple(params[name] for name in self._positions)


class FastCompletion:
    """COMPLETED in one fenced statement on a bare DBAPI connection.

    Only for a task no chain follows and no cancel was asked of (the WHERE
    says so): any other end needs the lifecycle's plan, under a row lock.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._prepared: dict[bool, Prepared] = {}

    def _statement(self, with_progress: bool) -> Prepared:
        # Both variants at once: the warm-up compiles them in the manager, so that
        # no forked child pays the compilation (its page copies) for either.
        if not self._prepared:
            self._prepared = {p: self._compile(p) for p in (False, True)}
        return self._prepared[with_progress]

    def _compile(self, with_progress: bool) -> Prepared:
        values: dict[str, Any] = {
            "status": Status.COMPLETED.value,
            "ended_at": bindparam("b_ended_at", type_=T.ended_at.type),
            "heartbeat_at": None,
            "result": bindparam("b_result", type_=T.result.type),
            "logs": bindparam("b_logs", type_=T.logs.type),
        }
        if with_progress:
            values["progress"] = bindparam("b_progress", type_=T.progress.type)
        where = (
            sql.fenced(bindparam("b_id"), bindparam("b_attempt"))
            & T.next_id.is_(None)
            & T.cancel_requested_at.is_(None)
        )
        statement = update(taches_table).where(where).values(**values)
        return Prepared(statement, self.store.engine.dialect)

    def complete(
        self,
        tache_id: int,
        attempt: int,
        result: Any,
        logs: list[dict[str, Any]],
        progress: dict[str, Any] | None,
    ) -> bool:
        """True when the row is COMPLETED now; False: the plain path must decide."""
        prepared = self._statement(progress is not None)
        params = prepared.parameters(
            {
                "b_id": tache_id,
                "b_attempt": attempt,
                "b_ended_at": utcnow(),
                "b_result": result,
                "b_logs": logs,
                "b_progress": progress,
            }
        )
        dbapi_error = self.store.engine.dialect.loaded_dbapi.Error
        try:
            raw = self.store.raw_connection()
        except dbapi_error:
            return False  # the plain path tries again, and raises as SQLAlchemy does
        try:
            cursor = raw.cursor()
            try:
                self.store.raw_begin(cursor)
                cursor.execute(prepared.sql, params)
                changed = cursor.rowcount == 1
            finally:
                cursor.close()
            if changed:
                raw.commit()
            else:
                raw.rollback()
            return changed
        except dbapi_error:
            with suppress(dbapi_error):
                raw.rollback()
            return False  # nothing committed: the plain path decides
        finally:
            raw.close()

    def warm(self, dbapi_connection: Any) -> None:
        """Run the end once on no row (then roll back), so a new backend has loaded the table."""
        prepared = self._statement(False)
        params = prepared.parameters(
            {"b_id": 0, "b_attempt": 0, "b_ended_at": None, "b_result": None, "b_logs": None}
        )
        cursor = dbapi_connection.cursor()
        try:
            self.store.raw_begin(cursor)
            cursor.execute(prepared.sql, params)
        finally:
            cursor.close()
            dbapi_connection.rollback()


def warm_up(store: Store) -> None:
    """Run each statement of a task's process once, on a row that does not exist.

    SQLAlchemy caches compiled statements per engine; a forked child starts
    with its parent's cache, so a warm manager spares every task the
    compilation. Nothing is written: no row has id 0. Last, the mappers: a
    broken model of the app's (the error is the caller's to log) only leaves
    the children to configure them.
    """
    with store.read() as conn:
        conn.execute(select(taches_table).where(T.id == 0)).first()
    store.record_start(0, 0, 0, "")
    store.record_live(0, 0, logs=[], progress={})
    store.beat(0, 0)
    store.record_end(0, 0, Status.COMPLETED, logs=[], progress={})
    # Each child makes its row a Tache, and the ORM configures every mapper at
    # the first instance: 3 ms of CPU and 500 page copies per child, unless here.
    configure_mappers()


def forget_pool_after_fork(engine: Engine) -> None:
    """In a forked child: give ``engine`` a new pool, leaving the parent's untouched.

    A pool that keeps no connection (NullPool, or an unused one) is left as it
    is: rebuilding it would only cost time.
    """
    pool = engine.pool
    if isinstance(pool, NullPool):
        return
    checkedin = getattr(pool, "checkedin", None)
    checkedout = getattr(pool, "checkedout", None)
    if callable(checkedin) and callable(checkedout) and checkedin() + checkedout() == 0:
        return
    _INHERITED_POOLS.append(pool)
    engine.dispose(close=False)
