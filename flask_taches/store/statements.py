"""The statements every store shares, each written once.

* :func:`fenced`: the WHERE of every write made for one attempt
  (``id = :id AND attempts = :attempt AND status = 'RUNNING'``): a process
  declared dead that comes back late matches no row and changes nothing;
* :func:`claimed_values`: what a claim writes into a row it makes RUNNING;
* :func:`read_row` / :func:`update_row`: one row by id;
* :func:`ready`: the rows a manager may claim now;
* :func:`same_text`: a text column equal to a value, character for character;
* :func:`minutes_since`: whole minutes from a time to a column's (the dashboard's chart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    ScalarSelect,
    cast,
    func,
    literal,
    select,
    update,
)

from ..models import UTCDateTime, taches_table
from ..status import Status

T = taches_table.c
TO_RUN = Status.TO_RUN.value
RUNNING = Status.RUNNING.value


def fenced(tache_id: Any, attempt: Any) -> ColumnElement[bool]:
    """This attempt's row, still RUNNING (values or bind parameters)."""
    return (T.id == tache_id) & (T.attempts == attempt) & (T.status == RUNNING)


def claimed_values(
    now: datetime | ColumnElement[Any],
    hostname: str | ColumnElement[Any] | None,
    pid: int | ColumnElement[Any] | None = None,
) -> dict[str, Any]:
    """The columns a claim sets (``attempts`` is the caller's: +1 in SQL or known).

    ``pid``: the claiming process runs the task itself (a pool child taking its next).
    """
    return {
        "status": RUNNING,
        "started_at": now,
        "ended_at": None,
        "heartbeat_at": now,
        "hostname": hostname,
        "pid": pid,
        "cancel_requested_at": None,
        "cancel_requested_by": None,
    }


def read_row(conn: Connection, tache_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    """The whole row, or None; ``for_update`` locks it where the database has row locks."""
    query = select(taches_table).where(T.id == tache_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def update_row(conn: Connection, tache_id: int, **values: Any) -> int:
    """Set ``values`` on one row by id; how many rows changed (0 or 1)."""
    return conn.execute(update(taches_table).where(T.id == tache_id).values(**values)).rowcount


def ready(
    now: datetime | ColumnElement[Any] | None, queues: Sequence[str] | None
) -> ColumnElement[bool]:
    """TO_RUN and due (``run_at`` passed; any run_at if ``now`` is None), in ``queues``."""
    clause = T.status == TO_RUN
    if now is not None:
        clause &= T.run_at.is_(None) | (T.run_at <= now)
    if queues:
        clause &= T.queue.in_(list(queues))
    return clause


#: The order tasks are claimed in (the order of ``ix_taches_ready``).
CLAIM_ORDER = (T.priority.desc(), T.run_at, T.id)


def claim_order_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """:data:`CLAIM_ORDER` in Python, for rows that came back unordered (a NULL
    ``run_at`` sorts last, as the databases sort it)."""
    return (-row["priority"], row["run_at"] is None, row["run_at"] or 0, row["id"])


def running_count() -> ScalarSelect[int]:
    """How many tasks are RUNNING, as a subquery."""
    return (
        select(func.count()).select_from(taches_table).where(T.status == RUNNING).scalar_subquery()
    )


def same_text(column: Any, value: str) -> ColumnElement[bool]:
    """``column`` holds exactly ``value``: plain ``=`` where the collation is exact.

    A store whose database compares text case-insensitively (MySQL, MariaDB)
    overrides :meth:`Store.same_text`, so ``owner = 'bob'`` never matches ``'BOB'``.
    """
    return column == value


def minutes_since(column: Any, start: datetime) -> ColumnElement[int]:
    """Whole minutes from ``start`` to ``column`` (a later time), as an integer, in SQL.

    The standard's ``EXTRACT(EPOCH FROM interval)``, as PostgreSQL has it; SQLite
    and MySQL override :meth:`Store.minutes_since` with their own date arithmetic.
    Lets the chart count its 60 minutes in one ``GROUP BY`` (no database cuts
    minutes the same way).
    """
    seconds = func.extract("epoch", column - literal(start, UTCDateTime()))
    return cast(func.floor(seconds / 60), Integer)
