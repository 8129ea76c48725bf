"""The database out of reach: the manager stays up, says so once, and tries again.

A server restarting, a network cut, a failover: the manager's statements fail
with connection errors until the database is back. The manager must neither
exit (its running tasks are still its to supervise) nor print one error per
poll. :class:`Outages` turns such a spell into two lines, one when it starts
and one when the database answers again; in between, the worker's database
error lines are held back (counted), and the manager claims again with
a backoff that doubles up to :data:`MAX_BACKOFF`. The outage ends with the
first claim that goes through (a mere ``SELECT 1`` would pass on a full
disk, where every write still fails).

Only operational errors open an outage (a lost connection, a refused one, a
server shutting down, SQLite's full disk); any other database error is logged as before, and a
bug such as a missing table still stops the manager with its message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from ..store import Store
from .log import logger

FIRST_BACKOFF = 0.5  # seconds before the first retry on a database that went away
MAX_BACKOFF = 5.0  # seconds: the retries never wait longer than this
#: The worker's lines that report a failed statement: held back during an outage.
DATABASE_ERROR_ACTIONS = frozenset(
    {
        "claim_error",
        "start_error",
        "end_error",
        "settle_error",
        "supervise_error",
        "rescue_error",
        "listen_error",
        "registry_error",
        "retention",
        "schedule_error",
    }
)


def database_errors(store: Store) -> tuple[type[BaseException], ...]:
    """What a statement may raise: SQLAlchemy's errors, and the driver's own.

    A driver's error escapes SQLAlchemy's wrapping where the dialect talks to
    the connection directly (PyMySQL's, when a connection's isolation level
    is set on a connection the server dropped).
    """
    dbapi = store.engine.dialect.loaded_dbapi
    return (SQLAlchemyError, TimeoutError, dbapi.Error)


#: SQLite raises OperationalError for a missing table too: only these say the
#: file cannot be written or reached, for now (as a server that went away).
SQLITE_OUTAGES = ("disk is full", "disk i/o error", "unable to open database", "locked")


def is_connection_error(exc: BaseException, store: Store) -> bool:
    """Whether ``exc`` says the database is out of reach (rather than a bad statement)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    dbapi = store.engine.dialect.loaded_dbapi
    if not isinstance(
        exc, (OperationalError, InterfaceError, dbapi.OperationalError, dbapi.InterfaceError)
    ):
        return False
    if store.engine.dialect.name != "sqlite":
        return True
    message = str(getattr(exc, "orig", None) or exc).lower()
    return any(sign in message for sign in SQLITE_OUTAGES)


class Outages:
    """One manager's view of its database's reachability (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        running: Callable[[], int] = lambda: 0,
        back: Callable[[], None] = lambda: None,
    ) -> None:
        """``running``: how many tasks go on; ``back``: called when an outage is over."""
        self.store = store
        self.errors = database_errors(store)
        self._running = running
        self._back = back
        self._since: float | None = None
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._held_back = 0
        self._filter = _HoldBack(self)
        self._pool_filter = _PoolReset(self)

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, what: str) -> bool:
        """``what`` failed with ``exc``: True if that is (or continues) an outage.

        False: not a connection error, for the caller to report as any error.
        """
        if not is_connection_error(exc, self.store):
            return False
        if self._since is None:
            self._since = time.monotonic()
            self._backoff = FIRST_BACKOFF
            self._held_back = 0
            logger.error(
                "database unreachable (%s: %s); %s running task(s) go on, the manager"
                " retries every %g to %g s and says when it is back",
                what,
                _one_line(exc),
                self._running(),
                FIRST_BACKOFF,
                MAX_BACKOFF,
                extra={"action": "outage", "tache_id": None},
            )
        self._retry_at = time.monotonic() + self._next_backoff()
        return True

    def report(self, exc: BaseException, what: str, action: str) -> None:
        """``what`` failed: part of an outage, or an error line of its own."""
        if not self.failed(exc, what):
            logger.error("%s: %s", what, exc, extra={"action": action, "tache_id": None})

    def retry_in(self) -> float:
        """Seconds before the next claim after a failed one: the outage's backoff."""
        if self._since is None:
            return FIRST_BACKOFF
        return max(0.0, self._retry_at - time.monotonic())

    def succeeded(self) -> None:
        """A statement went through: an outage, if any, is over."""
        if self._since is None:
            return
        logger.warning(
            "database reachable again after %.1f s (%s error line(s) held back meanwhile)",
            time.monotonic() - self._since,
            self._held_back,
            extra={"action": "outage_over", "tache_id": None},
        )
        self._since = None
        self._back()

    def survive(self, loop: Callable[[], None], pause: Callable[[float], None]) -> None:
        """Run ``loop``; when a connection error escapes it, wait and run it again."""
        # The logger of the pool's class: SQLAlchemy logs a failed reset there.
        pool = self.store.engine.pool
        pool_logger = logging.getLogger(f"{type(pool).__module__}.{type(pool).__name__}")
        logger.addFilter(self._filter)
        pool_logger.addFilter(self._pool_filter)
        try:
            while True:
                try:
                    loop()
                    return
                except self.errors as exc:
                    if not self.failed(exc, "the manager's loop"):
                        raise
                pause(max(0.0, self._retry_at - time.monotonic()))
        finally:
            logger.removeFilter(self._filter)
            pool_logger.removeFilter(self._pool_filter)

    def _next_backoff(self) -> float:
        delay = self._backoff * random.uniform(0.8, 1.2)  # managers do not retry in step
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)
        return delay

    def held_back_one(self) -> None:
        self._held_back += 1

    def hold_back(self, record: logging.LogRecord) -> bool:
        """Whether a worker line is a database error line the outage's own lines stand for.

        The first connection error may reach any statement before a claim (a
        beat, a rescue, the registry: with every slot taken, no claim runs), so
        such a line opens the outage as a failed claim would.
        """
        if getattr(record, "action", None) not in DATABASE_ERROR_ACTIONS:
            return False
        if self._since is not None:
            self._held_back += 1
            return True
        exc = _exception_in(record)
        return exc is not None and self.failed(exc, record.getMessage().split(":")[0])


def _exception_in(record: logging.LogRecord) -> BaseException | None:
    """The exception a worker line reports: as ``extra={"error": …}``, exc_info or an argument."""
    error = getattr(record, "error", None)
    if isinstance(error, BaseException):
        return error
    if record.exc_info and record.exc_info[1] is not None:
        return record.exc_info[1]
    args = record.args if isinstance(record.args, tuple) else ()
    return next((arg for arg in args if isinstance(arg, BaseException)), None)


class _PoolReset(logging.Filter):
    """SQLAlchemy's traceback when a connection the server dropped fails its rollback.

    The pool then discards the connection, as it should: the outage's line
    says all there is to say, where this would print twenty.
    """

    def __init__(self, outages: Outages) -> None:
        super().__init__()
        self.outages = outages

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not str(record.msg).startswith("Exception during reset"):
            return True
        if not is_connection_error(exc, self.outages.store):
            return True
        self.outages.held_back_one()
        return False


class _HoldBack(logging.Filter):
    def __init__(self, outages: Outages) -> None:
        super().__init__()
        self.outages = outages

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.outages.hold_back(record)


def _one_line(exc: BaseException) -> str:
    """The first line of an error, without SQLAlchemy's background link."""
    orig: Any = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__
