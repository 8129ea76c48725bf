"""PostgreSQL: row locks, ``SKIP LOCKED`` claims and ``LISTEN/NOTIFY`` wake-ups.

* **Claims:** a transaction advisory lock serialises them (released at
  commit), so the RUNNING count each claim reads (READ COMMITTED: a fresh
  snapshot) includes the claims committed before; ``SKIP LOCKED`` passes
  rows that others hold. With psycopg 3 the lock, the claim and the commit
  go in one round trip (:mod:`.claim_script`): the lock is held server-side.
* **Wake-up source:** ``LISTEN`` on a connection of its own; every insert,
  retry or restart NOTIFYs (delivered at commit).
* **Inserts:** one row NOTIFYs in the INSERT itself; many rows are one
  ``INSERT ... SELECT FROM unnest(<one array per column>)``.
"""

from __future__ import annotations

import json
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
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import Null

from ..models import UTCDateTime, taches_table
from .base import Store
from .claim_script import claim_in_one_trip
from .claims import Started
from .inserting import ID
from .records import ClaimAsk, Claimed
from .wakeups import WaitingFor, WakeSource, readable

#: The channel managers LISTEN on; the payload is the queue of the new task.
CHANNEL = "taches_added"
#: Key of the transaction advisory lock that serialises claims ("taches" + 1).
CLAIM_LOCK_KEY = 0x7461636865730001
CLAIM_LOCK = f"SELECT pg_advisory_xact_lock({CLAIM_LOCK_KEY})"

# The wake-up rides on the INSERT (an uncorrelated subquery runs once per
# statement) instead of costing its own round trip.
_INSERT_ONE_WAKE: Insert = insert(taches_table).returning(
    ID, select(func.pg_notify(bindparam("wake_channel"), bindparam("wake_queue"))).scalar_subquery()
)


class PostgresStore(Store):
    """PostgreSQL's store (see the module's docstring)."""

    skip_locked = True
    claims_in_one_statement = True

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        """psycopg 3 says where its socket is (:mod:`.forking`)."""
        driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        return None if driver.closed else int(driver.fileno())

    def _claim_with_pids(self, conn: Connection, ask: ClaimAsk, started: Started) -> list[Claimed]:
        """The pids, then the lock and the claim in one round trip (:mod:`.claim_script`)."""
        if started:
            self._record_pids_in(conn, started, ask.hostname)
        if conn.dialect.driver == "psycopg":
            return claim_in_one_trip(conn, ask, CLAIM_LOCK)
        conn.execute(text(CLAIM_LOCK))  # another driver: the same claim, a statement at a time
        return self._claim_in(conn, ask)

    def wake_source(self, wanted: WaitingFor) -> WakeSource:
        """``LISTEN`` on a connection of its own (psycopg 3); other drivers poll."""
        fairy = self.engine.raw_connection()
        driver = fairy.driver_connection
        if not callable(getattr(driver, "notifies", None)):
            fairy.close()
            return WakeSource()
        return Listen(fairy, CHANNEL)

    def notify_added(self, conn: Connection, queue: str) -> None:
        conn.execute(
            text("SELECT pg_notify(:channel, :queue)"), {"channel": CHANNEL, "queue": queue}
        )

    def one_row(self, values: dict[str, Any], *, wake: bool) -> tuple[Insert, dict[str, Any], bool]:
        if not wake:
            return super().one_row(values, wake=False)
        params = {**values, "wake_channel": CHANNEL, "wake_queue": values["queue"]}
        return _INSERT_ONE_WAKE, params, True

    def _insert_if_free(self, conn: Connection, values: dict[str, Any]) -> int | None:
        # Waits for a concurrent holder's transaction, aborts nothing of the caller's.
        statement = pg_insert(taches_table).on_conflict_do_nothing(index_elements=["live_key"])
        new_id = conn.execute(statement.returning(ID), values).scalar()
        return None if new_id is None else int(new_id)

    def _insert_many(self, conn: Connection, params: list[dict[str, Any]]) -> list[int]:
        """One ``INSERT ... SELECT FROM unnest(...)`` for all the rows.

        The multi-row VALUES form sends 14 placeholders a row, and the driver
        parses that text again for every 1,000 rows; one array per column keeps
        the statement short. Rows are inserted ``ORDER BY`` their position, so
        the sequence hands them increasing ids: sorted, the ids are in the
        rows' order (what SQLAlchemy's own ordered RETURNING relies on there).
        """
        keys = list(params[0])
        arrays = [
            bindparam(f"u_{key}", *_array(conn, key, [row[key] for row in params])) for key in keys
        ]
        rows = func.unnest(*arrays).table_valued(*keys, with_ordinality="n").render_derived("u")
        columns = [cast(rows.c[k], JSONB) if _is_json(k) else rows.c[k] for k in keys]
        query = insert(taches_table).from_select(keys, select(*columns).order_by(rows.c.n))
        return sorted(int(i) for i in conn.execute(query.returning(ID)).scalars())


def _is_json(key: str) -> bool:
    return isinstance(taches_table.c[key].type, JSON)


def _array(conn: Connection, key: str, values: list[Any]) -> tuple[list[Any], ARRAY[Any]]:
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


class Listen(WakeSource):
    """``LISTEN`` on its own psycopg 3 connection, closed (never pooled) after."""

    trusted = True  # every insert, retry and restart NOTIFYs

    def __init__(self, fairy: Any, channel: str) -> None:
        self._fairy = fairy
        self._conn = fairy.driver_connection
        self._conn.rollback()
        self._conn.autocommit = True
        self._conn.execute(f"LISTEN {channel}")

    def _drain(self) -> bool:
        """Consume the notifications already received; True if there were any."""
        return sum(1 for _ in self._conn.notifies(timeout=0)) > 0

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        if self._drain():
            return True
        fd = self._conn.fileno()
        return fd in readable([fd, wake_fd], timeout) and self._drain()

    def close(self) -> None:
        # A LISTENing connection must not go back to the pool.
        if self._fairy.is_valid:
            self._fairy.invalidate()
