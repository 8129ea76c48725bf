"""PostgreSQL's claim in one round trip: the lock, the claim and the commit.

Every manager's claim waits on the claim lock, so each round trip a claim
makes while it holds the lock is one that all the other claims wait for too.
On a loaded machine a round trip costs the client's wake-up (10-20 ms each at
a load of 10 on 2 cores), and four managers' claims, holding the lock for two
of them, kept it taken almost all the time. So the claim goes as one script::

    SELECT pg_advisory_xact_lock(<key>); UPDATE taches ... RETURNING *; COMMIT

which the server runs statement after statement without waiting for the
client. Each statement takes a fresh snapshot (READ COMMITTED), so the
claim's RUNNING count, read after the lock is granted, sees every claim
committed before: all managers together never exceed the global max. The
lock is held for the claim's own statement and the commit, server-side.
The pids of just-forked children go before, in the same transaction.

Several statements in one call need the simple-query protocol, which takes
no parameters: psycopg 3 binds the values on the client side
(:class:`psycopg.ClientCursor`, which quotes them), in a script compiled once.
Another driver claims in separate statements (:mod:`.postgresql`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Integer,
    String,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Update

from ..clock import utcnow
from ..models import UTCDateTime, taches_table
from . import statements as sql
from .records import ClaimAsk, Claimed

T = sql.T
#: The script's values, bound for each claim.
UTC = UTCDateTime()
NOW = bindparam("now", type_=UTC)
HOSTNAME = bindparam("hostname", type_=String())
LIMIT = bindparam("limit", type_=Integer())
MAX_RUNNING = bindparam("max_running", type_=Integer())
QUEUES = bindparam("queues", type_=ARRAY(String()))
PID = bindparam("pid", type_=Integer())


def claim_statement(ready: ColumnElement[bool], claim: Mapping[str, Any]) -> Update:
    """The RUNNING count, the ``SKIP LOCKED`` pick and the update as one statement."""
    room = func.greatest(0, func.least(LIMIT, MAX_RUNNING - sql.running_count()))
    picked = (
        select(T.id)
        .where(ready)
        .order_by(*sql.CLAIM_ORDER)
        .limit(room)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(taches_table)
        .where(T.id.in_(picked))
        .values(attempts=T.attempts + 1, **claim)
        .returning(*taches_table.c)
    )


@lru_cache(maxsize=8)
def _script(dialect: Dialect, lock: str, by_queue: bool) -> tuple[str, dict[str, Any]]:
    """The script's text and its constant values (compiled once: it costs milliseconds)."""
    ready = sql.ready(NOW, None)
    if by_queue:
        ready &= T.queue == any_(QUEUES)
    compiled = claim_statement(ready, sql.claimed_values(NOW, HOSTNAME, PID)).compile(
        dialect=dialect
    )
    return f"{lock};\n{compiled.string};\nCOMMIT", dict(compiled.params)


@lru_cache(maxsize=8)
def _processors(dialect: Dialect) -> dict[str, Callable[[Any], Any] | None]:
    """Each column's result processing (aware datetimes), as SQLAlchemy's would do."""
    return {c.name: c.type.result_processor(dialect, None) for c in taches_table.c}


def claim_in_one_trip(conn: Connection, ask: ClaimAsk, lock: str) -> list[Claimed]:
    """Run the script (``lock`` is its locking statement) in ``conn``'s transaction,
    which it commits; the rows claimed, in claim order."""
    from psycopg import ClientCursor  # the store's module checked the driver

    dialect = conn.dialect
    script, constants = _script(dialect, lock, bool(ask.queues))
    values = {
        **constants,
        "now": UTC.process_bind_param(utcnow(), dialect),
        "hostname": ask.hostname,
        "pid": ask.pid,
        "limit": ask.limit,
        "max_running": ask.max_running,
        "queues": list(ask.queues or ()),
    }
    fairy = conn.connection
    cursor: Any = ClientCursor(fairy.driver_connection)  # type: ignore[arg-type]
    try:
        cursor.execute(script, values)
        cursor.nextset()  # past the lock's result
        names = [column.name for column in cursor.description or ()]
        raw = cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy's own execution would: its error type, and on a disconnect the
        # whole pool dropped (its other connections died with the server too).
        if dialect.is_disconnect(exc, fairy.dbapi_connection, cursor):
            conn.invalidate(exc)
            conn.engine.dispose(close=False)
        raise DBAPIError.instance(script, None, exc, dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()
    processors = _processors(dialect)
    rows = [
        {name: _processed(processors[name], v) for name, v in zip(names, values_, strict=True)}
        for values_ in raw
    ]
    return [Claimed.of_row(row) for row in sorted(rows, key=sql.claim_order_key)]


def _processed(process: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if process is None else process(value)
