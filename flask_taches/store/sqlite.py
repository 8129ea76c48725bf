"""SQLite: one writer at a time, so the claim lock is the database's own write lock.

* **Transactions:** the store has an engine of its own on the same file whose
  transactions ``BEGIN IMMEDIATE`` (the write lock up front, so no deadlock
  when a reader upgrades), in WAL mode so pages never wait for tasks; its
  reads go through another, in autocommit, that keeps one connection open
  between forks (:func:`reader_engine`).
* **Claims:** look first without the lock (most wake-ups find nothing), then
  claim under ``BEGIN IMMEDIATE``.
* **Wake-up source:** a watch on the database's commit mark, woken by inotify
  where there is one (:mod:`.file_watch`), confirmed by one short read.
* **Inserts:** one multi-row INSERT for many rows; SQLite numbers them in
  VALUES order under the write lock.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    cast,
    create_engine,
    event,
    func,
    insert,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool, QueuePool
from sqlalchemy.sql.dml import Insert

from ..clock import as_utc
from ..models import taches_table
from . import statements as sql
from .base import Store
from .fast import forget_pool_after_fork
from .file_watch import FileWatch
from .wakeups import WaitingFor, WakeSource

BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock

# SQLAlchemy has no ordered RETURNING on SQLite and would send one INSERT per
# row; a multi-row INSERT numbers its rows max(id)+1, +2... in VALUES order
# under the write lock, so the ids, sorted, are in the rows' order.
_INSERT_MANY: Insert = insert(taches_table).returning(sql.T.id)


class SQLiteStore(Store):
    """SQLite's store (see the module's docstring)."""

    cheap_single_claims = True  # the write lock is taken and released by local calls
    #: Running tasks need the write lock to beat and end: a claim reads first.
    look_before_lock = True

    def __init__(self, engine: Engine, retry_base: float = 10.0) -> None:
        super().__init__(own_engine(engine), retry_base)
        self.app_engine = engine
        self._reader: Engine | None = None
        #: Connections are kept between transactions (:meth:`keep_connections`).
        self._keeps = False

    @staticmethod
    def minutes_since(column: Any, start: datetime) -> ColumnElement[int]:
        """Unix seconds of the stored text's whole seconds, integer-divided by 60.

        The text is cut before its fraction: SQLite would round ``59.9999`` to
        the next second, hence the next minute. ``start`` is a whole minute, so
        dropping the fraction never moves a time to another minute.
        """
        whole = func.strftime("%s", func.substr(column, 1, len("YYYY-MM-DD HH:MM:SS")))
        seconds = cast(whole, Integer) - int(as_utc(start).timestamp())
        return seconds // 60

    # -- transactions -------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Plain autocommit connections on the same file: reads never take the write lock."""
        if self._reader is None:
            self._reader = reader_engine(self.engine.url)
        with self._reader.connect() as conn:
            yield conn

    def drop_connections(self) -> None:
        super().drop_connections()
        if self._reader is not None:
            self._reader.dispose()

    def lock_row(self, conn: Connection, tache_id: int) -> dict[str, Any] | None:
        # The IMMEDIATE transaction already holds the database's write lock.
        return sql.read_row(conn, tache_id)

    def raw_connection(self) -> Any:
        # The pool and its connect event cost a just-forked process more than the
        # write itself. WAL is the file's own (set by the engine's first connection,
        # always made before a task ends); synchronous is per connection.
        path = self.engine.url.database
        if self._keeps or not path or path == ":memory:" or self.engine.url.query:
            return super().raw_connection()
        dbapi = self.engine.dialect.loaded_dbapi
        raw = dbapi.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        raw.execute("PRAGMA synchronous=NORMAL")
        return raw

    def raw_begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def _insert_if_free(self, conn: Connection, values: dict[str, Any]) -> int | None:
        # No savepoint: the app's pysqlite connection may not have begun the transaction.
        statement = sqlite_insert(taches_table).on_conflict_do_nothing().returning(sql.T.id)
        new_id = conn.execute(statement, values).scalar()
        return None if new_id is None else int(new_id)

    def before_fork(self) -> None:
        # A SQLite connection open across a fork shares its locking state with the
        # child; the manager never uses the app's engine, so it need hold none.
        self.app_engine.dispose()

    def forget_connections_after_fork(self) -> None:
        # The store's writer is NullPool and its reader closed its connection before
        # the fork (reader_engine): they have no connection to share.
        # The app's engine pools: drop (never close) what the parent left in it.
        forget_pool_after_fork(self.app_engine)

    def keep_connections(self) -> None:
        # A connection per transaction costs some 0.5 ms of CPU each time (the open,
        # the pragmas, the schema read): several times a task, more than a no-op task.
        # The old engine opened no connection to close: it pooled none.
        if not self._keeps:
            self._keeps = True
            self.engine = own_engine(self.app_engine, keep=True)

    # -- claims and wake-ups ------------------------------------------------------

    def wake_source(self, wanted: WaitingFor) -> WakeSource:
        """Watches the database's files for commits by others."""
        path = self.engine.url.database
        if not path or path == ":memory:":
            return WakeSource()

        def claimable(within: float) -> bool:
            with self.read() as conn:
                return self._claimable(conn, wanted.max_running, wanted.queues, within)

        return FileWatch(os.path.abspath(path), claimable)

    # -- inserts --------------------------------------------------------------------

    def _insert_many(self, conn: Connection, params: list[dict[str, Any]]) -> list[int]:
        if not conn.dialect.insert_executemany_returning:
            return super()._insert_many(conn, params)
        ids = sorted(int(i) for i in conn.execute(_INSERT_MANY, params).scalars())
        if ids[-1] - ids[0] + 1 != len(ids):
            # Only when the largest rowid is taken: SQLite then picks them at random.
            raise RuntimeError("SQLite gave non-consecutive ids to one insert: not saved")
        return ids


def reader_engine(url: URL) -> Engine:
    """Autocommit reads on ``url``, one connection kept open between them, none across a fork.

    The last connection of all processes to close checkpoints the WAL and
    deletes it with its index, for the next one to create again: alone on its
    file, an idle manager paid four times a read's cost for each read, and ten
    times a write's for each write. With one connection kept in the pool, no
    other close is the last.

    A SQLite connection open across a fork shares its locking state with the
    child, so the kept one is closed before any ``os.fork`` of this process (a
    manager's task, a pool child, a web server's workers), the next read opens
    another.
    """
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=-1,  # other threads' reads open (and close) connections of their own
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": BUSY_TIMEOUT},
    )
    os.register_at_fork(before=partial(_close_pooled, weakref.ref(engine)))
    return engine


def _close_pooled(engine: weakref.ref[Engine]) -> None:
    alive = engine()
    if alive is not None and isinstance(alive.pool, QueuePool) and alive.pool.checkedin():
        alive.dispose()


def own_engine(app_engine: Engine, *, keep: bool = False) -> Engine:
    """An engine on the app's file whose transactions begin IMMEDIATE, in WAL mode.

    It opens a connection per transaction, or with ``keep`` keeps them in a
    pool (a connection then serves one thread at a time, any thread: the
    task's and its watchdog's). The application's engine is left as it is.
    """
    url = make_url(str(app_engine.url.render_as_string(hide_password=False)))
    if keep:
        connect_args = {"timeout": BUSY_TIMEOUT, "check_same_thread": False}
        engine = create_engine(url, poolclass=QueuePool, connect_args=connect_args)
    else:
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would BEGIN DEFERRED; we BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if url.database and url.database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the
            # last commits, not a crash of the process. It spares an fsync per
            # commit, which a task's few short writes are otherwise bound by.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
