"""MySQL 8 / MariaDB 10.6+: row locks and ``SKIP LOCKED`` claims; managers look for work.

* **Claims:** ``GET_LOCK`` (named after the database: the lock is
  server-wide) serialises them; it is taken before the transaction so that
  its first read, the RUNNING count, sees every claim committed before. A
  claim that does not expect work reads first, without the lock.
  READ COMMITTED: no gap locks that would make ``add()`` wait on a claim.
* **Wake-up source:** none in the server (no ``LISTEN``), so the manager
  looks: one cheap read every ``TACHES_POLL`` seconds on a connection of its
  own (:mod:`.looks`), instead of a whole claim (lock, transaction, release).
* **Inserts:** the portable forms (no ordered RETURNING for many rows).
* **Exact text:** the default collations fold case, accents and trailing
  spaces (``'bob' = 'BOB '``): :meth:`MySQLStore.same_text` compares bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, cast, func, literal, text
from sqlalchemy.dialects.mysql import BINARY

from ..models import UTCDateTime
from .base import Store
from .looks import Looks
from .wakeups import WaitingFor, WakeSource

CLAIM_LOCK_WAIT = 10  # seconds a claim waits for GET_LOCK
#: Hashed: MySQL 8 refuses lock names over 64 characters, database names go to 64.
CLAIM_LOCK_NAME = "CONCAT('taches_claim.', SHA1(DATABASE()))"


class MySQLStore(Store):
    """MySQL's and MariaDB's store (see the module's docstring)."""

    skip_locked = True
    #: The claim lock is four round trips and a transaction: a claim reads first.
    look_before_lock = True

    @staticmethod
    def same_text(column: Any, value: str) -> ColumnElement[bool]:
        """Byte for byte; the plain ``=`` beside it keeps the column's index usable."""
        as_bytes = cast(column, BINARY()) == cast(literal(value), BINARY())
        return (column == value) & as_bytes

    @staticmethod
    def minutes_since(column: Any, start: datetime) -> ColumnElement[int]:
        """``TIMESTAMPDIFF`` counts whole minutes (it truncates: a later time is floored)."""
        return func.timestampdiff(text("MINUTE"), literal(start, UTCDateTime()), column)

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        """PyMySQL keeps its socket in ``_sock`` (None once closed); mysqlclient has ``fileno``."""
        if hasattr(dbapi_connection, "_sock"):
            sock = dbapi_connection._sock
            return None if sock is None else int(sock.fileno())
        fileno = getattr(dbapi_connection, "fileno", None)
        return int(fileno()) if callable(fileno) else None

    def wake_source(self, wanted: WaitingFor) -> WakeSource:
        """A look for claimable work every ``wanted.poll`` seconds (see :mod:`.looks`)."""
        return Looks(self, wanted)

    @contextmanager
    def _claim_transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            try:
                conn = conn.execution_options(isolation_level="READ COMMITTED")
            except self.engine.dialect.loaded_dbapi.Error:
                # The driver's own error (SQLAlchemy does not wrap this call): a
                # connection the server dropped must not go back to the pool.
                conn.invalidate()
                raise
            got = conn.execute(
                text(f"SELECT GET_LOCK({CLAIM_LOCK_NAME}, :wait)"), {"wait": CLAIM_LOCK_WAIT}
            ).scalar()
            conn.commit()
            if got != 1:
                raise TimeoutError(f"claim lock not granted within {CLAIM_LOCK_WAIT}s")
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.execute(text(f"SELECT RELEASE_LOCK({CLAIM_LOCK_NAME})"))
                conn.commit()
