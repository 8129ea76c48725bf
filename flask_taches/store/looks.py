"""A wake-up source for a database that tells nothing: one cheap look every ``TACHES_POLL``.

MySQL and MariaDB have no ``LISTEN``. Without a source of their own, an idle
manager polled with a whole claim every ``TACHES_POLL`` seconds: the claim
lock taken and released, a transaction, the RUNNING count and the ready rows
read, about ten round trips, five times a second. A look is one statement
compiled once and run on a bare DBAPI connection the source keeps for itself
in autocommit (no pool checkout, no transaction to end, no SQLAlchemy
execution: about a tenth of the CPU of the same read through a
``Connection``): is a task ready? Only when one is does it count the RUNNING
ones, and only when a slot is free does the manager claim.

The source is *trusted*: whatever makes work claimable (a new task, a retry,
a ``run_at`` come due, a slot freed by a manager on another host) is seen at
the next look, within ``TACHES_POLL`` seconds, so the manager's own poll
waits ``TACHES_IDLE_POLL`` seconds (:mod:`flask_taches.worker.pacing`).

The looks keep their own schedule across waits: a manager whose waits are
cut short (a child to watch, a deadline) still looks every ``TACHES_POLL``
seconds, not once per wait.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, exists, func, or_, select

from ..clock import utcnow
from ..models import taches_table
from . import statements as sql
from .fast import Prepared
from .wakeups import WaitingFor, WakeSource, readable

if TYPE_CHECKING:
    from .base import Store

T = sql.T
MIN_EVERY = 0.002  # seconds: TACHES_POLL=0 must not make the looks spin


class Looks(WakeSource):
    """Looks for claimable work every ``wanted.poll`` seconds on a connection of its own."""

    trusted = True  # every change that makes work claimable is seen at the next look

    def __init__(self, store: Store, wanted: WaitingFor) -> None:
        dialect = store.engine.dialect
        self._ready = Prepared(_ready_query(wanted.queues), dialect)
        self._running = Prepared(_running_query(), dialect)
        self._max_running = wanted.max_running
        self._every = max(MIN_EVERY, wanted.poll)
        self._engine = store.engine
        self._errors = dialect.loaded_dbapi.Error
        self._connect()
        #: Monotonic time of the next look (the manager has just claimed: not before a poll).
        self._next = time.monotonic() + self._every
        #: How many looks it made (each one statement, two when a task is ready).
        self.looks = 0

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now >= self._next:
                self._next = now + self._every
                if self._claimable():
                    return True
            if now >= deadline:
                return False
            if readable([wake_fd], min(deadline, self._next) - now):
                return False

    def _connect(self) -> None:
        # Taken from the engine: its socket is one a forked child never keeps (forking.py).
        self._fairy = self._engine.raw_connection()
        driver: Any = self._fairy.dbapi_connection
        driver.autocommit(True)
        self._cursor = driver.cursor()

    def _claimable(self) -> bool:
        self.looks += 1
        try:
            return self._look()
        except self._errors:
            # A busy manager does not look: its connection may have died with a server
            # restarted meanwhile, an outage over by now. One new connection, one more try
            # (which raises if the server is away: the manager then says so).
            self.close()
            self._connect()
            return self._look()

    def _look(self) -> bool:
        if not self._value(self._ready, {"b_now": utcnow()}):
            return False
        return self._max_running is None or self._value(self._running, {}) < self._max_running

    def _value(self, prepared: Prepared, values: dict[str, Any]) -> Any:
        self._cursor.execute(prepared.sql, prepared.parameters(values))
        return self._cursor.fetchone()[0]

    def close(self) -> None:
        # Never back to the pool in autocommit.
        if self._fairy.is_valid:
            self._fairy.invalidate()


def _ready_query(queues: Sequence[str] | None) -> Any:
    due = T.run_at.is_(None) | (T.run_at <= bindparam("b_now", type_=T.run_at.type))
    where = sql.ready(None, None) & due
    if queues:
        # One parameter each: an IN list would be expanded at each execution.
        where &= or_(*(T.queue == queue for queue in queues))
    return select(exists().where(where))


def _running_query() -> Any:
    return select(func.count()).select_from(taches_table).where(T.status == sql.RUNNING)
