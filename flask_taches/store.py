"""All SQL on the ``taches`` table that must be atomic or fenced.

Views and the service API read through the application's ``db.session``; every
state change that races with other processes (claiming, a task's own writes,
its end, retries, chains, rescue) goes through a :class:`Store`, which speaks
SQLAlchemy Core on its own connections so it never commits a session a task or
a view is using.

Each write made by a task's own process is *fenced*: ``WHERE id = :id AND
attempts = :attempt AND status = 'RUNNING'``. A process that was declared dead
and comes back late matches no row and changes nothing.

The dialect-specific parts (SQLite's immediate transactions, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL and MySQL/MariaDB, PostgreSQL's ``LISTEN/NOTIFY``) live
in this module and nowhere else.
"""

from __future__ import annotations

import os
import random
import select as _select
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    false,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from .exceptions import InvalidTransition, TacheNotFound
from .models import taches_table, utcnow
from .status import FINISHED, Status

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock
MAX_RETRY_DELAY = 6 * 3600.0  # seconds: backoff never waits longer than this
SQLITE_WATCH = 0.01  # seconds between two looks at the database files by an idle manager
MYSQL_CLAIM_LOCK_WAIT = 10  # seconds a MySQL/MariaDB claim waits for GET_LOCK
#: Key of PostgreSQL's transaction advisory lock that serialises claims ("taches" + 1).
POSTGRES_CLAIM_LOCK_KEY = 0x7461636865730001

_TO_RUN = Status.TO_RUN.value
_RUNNING = Status.RUNNING.value
_FINISHED = [s.value for s in FINISHED]


@dataclass(frozen=True)
class Claimed:
    """A task a manager has just made RUNNING, with what its executor needs."""

    id: int
    attempt: int
    method: str
    timeout: float | None
    queue: str
    #: The whole row as claimed (RUNNING, this attempt): a forked child runs
    #: from it without reading the row again.
    row: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class AttemptState:
    """A task's row as its supervising manager sees it."""

    status: Status
    attempts: int
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    #: Set once the task's own process has started (``mark_started``).
    pid: int | None = None


@dataclass(frozen=True)
class Rescued:
    """A RUNNING task found dead by :meth:`Store.rescue`, and where it went."""

    id: int
    attempt: int
    status: Status
    reason: str


@dataclass(frozen=True)
class Overdue:
    """A task of this host past its timeout and grace (:meth:`Store.overdue_here`)."""

    id: int
    attempt: int
    pid: int
    started_at: datetime
    timeout: float


class Prepared:
    """A statement compiled once for a dialect, then run on a bare DBAPI cursor.

    For the few statements a forked task's process runs: compiled (and its
    bind processors looked up) in the warm manager, they spare the child
    SQLAlchemy's per-execution work, whose first run in a fresh process
    touches (so copies) hundreds of the parent's memory pages.
    """

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
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


def log_entry(level: str, message: str, details: Any = None) -> dict[str, Any]:
    """A log entry written by flask-taches itself (same shape as ``Tache.log``)."""
    return {"level": level, "message": message, "details": details, "at": utcnow().isoformat()}


#: Pools a forked child inherited: kept referenced so that the child never
#: finalizes (closes) a connection that belongs to its parent.
_INHERITED_POOLS: list[Any] = []


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


def retry_delay(attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1-based): base x 2^(n-1), +-25% jitter."""
    rng = rng or random.Random()
    delay = min(base * (2 ** max(0, attempt - 1)), MAX_RETRY_DELAY)
    return delay * rng.uniform(0.75, 1.25)


class Store:
    """Atomic operations on the table, for one database.

    Build it with :meth:`for_engine`, which picks the dialect's subclass.
    """

    dialect = "generic"

    def __init__(self, engine: Engine, retry_base: float = 10.0) -> None:
        self.engine = engine
        self.retry_base = retry_base

    @classmethod
    def for_engine(cls, engine: Engine, retry_base: float = 10.0) -> Store:
        name = engine.dialect.name
        if name == "sqlite":
            return SQLiteStore(SQLiteStore.own_engine(engine), retry_base)
        if name == "postgresql":
            return PostgresStore(engine, retry_base)
        if name in ("mysql", "mariadb"):
            return MySQLStore(engine, retry_base)
        return cls(engine, retry_base)

    # -- transactions ------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``, so no upgrade deadlock)."""
        with self.engine.begin() as conn:
            yield conn

    def lock_row(self, conn: Connection, tache_id: int) -> dict[str, Any] | None:
        """Read one row for update inside ``conn``'s transaction."""
        row = (
            conn.execute(
                select(taches_table).where(taches_table.c.id == tache_id).with_for_update()
            )
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None

    def dispose_after_fork(self) -> None:
        """In a forked child: forget the parent's pooled connections, never close them."""
        forget_pool_after_fork(self.engine)

    # -- a task's own process (all fenced by its attempt) ------------------------

    @staticmethod
    def _fenced(tache_id: int, attempt: int) -> Any:
        t = taches_table.c
        return (t.id == tache_id) & (t.attempts == attempt) & (t.status == Status.RUNNING.value)

    def claim_id(self, tache_id: int, *, force: bool = False, hostname: str | None = None) -> int:
        """Make one given task RUNNING (the ``run ID`` path); returns its attempt number.

        Without ``force`` the task must be TO_RUN; with it, anything but RUNNING.
        Raises :class:`TacheNotFound` or :class:`InvalidTransition`.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise TacheNotFound(f"no task with id {tache_id}")
            status = row["status"]
            if status == Status.RUNNING.value:
                raise InvalidTransition(f"task {tache_id} is already RUNNING")
            if not force and status != Status.TO_RUN.value:
                raise InvalidTransition(
                    f"task {tache_id} is {status}, not TO_RUN (use --force to run it anyway)"
                )
            attempt = int(row["attempts"] or 0) + 1
            now = utcnow()
            conn.execute(
                update(taches_table)
                .where(taches_table.c.id == tache_id)
                .values(
                    status=Status.RUNNING.value,
                    attempts=attempt,
                    started_at=now,
                    ended_at=None,
                    heartbeat_at=now,
                    hostname=hostname,
                    pid=None,
                    cancel_requested_at=None,
                    cancel_requested_by=None,
                )
            )
            return attempt

    def mark_started(self, tache_id: int, attempt: int, pid: int, hostname: str) -> bool:
        """The task's process says who it is; False when its attempt was superseded."""
        with self.write() as conn:
            result = conn.execute(
                update(taches_table)
                .where(self._fenced(tache_id, attempt))
                .values(pid=pid, hostname=hostname, heartbeat_at=utcnow())
            )
            return result.rowcount == 1

    def save_live(
        self,
        tache_id: int,
        attempt: int,
        *,
        logs: list[dict[str, Any]] | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Write logs/progress of a running task and beat; False when fenced out."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if logs is not None:
            values["logs"] = logs
        if progress is not None:
            values["progress"] = progress
        with self.write() as conn:
            result = conn.execute(
                update(taches_table).where(self._fenced(tache_id, attempt)).values(**values)
            )
            return result.rowcount == 1

    def beat(self, tache_id: int, attempt: int) -> tuple[bool, str | None]:
        """Heartbeat; returns (still ours, who asked to cancel or None)."""
        with self.write() as conn:
            result = conn.execute(
                update(taches_table)
                .where(self._fenced(tache_id, attempt))
                .values(heartbeat_at=utcnow())
            )
            if result.rowcount != 1:
                return False, None
            row = conn.execute(
                select(
                    taches_table.c.cancel_requested_at, taches_table.c.cancel_requested_by
                ).where(taches_table.c.id == tache_id)
            ).first()
        if row is None or row.cancel_requested_at is None:
            return True, None
        return True, row.cancel_requested_by or "someone"

    def finish(
        self,
        tache_id: int,
        attempt: int,
        status: Status,
        *,
        result: Any = None,
        logs: list[dict[str, Any]] | None = None,
        progress: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Status | None:
        """Record the end of an attempt; returns the status stored, None if fenced out.

        A FAILED or INTERRUPTED attempt with attempts left goes back to TO_RUN
        with a backed-off ``run_at`` (unless ``retry`` is False: another attempt
        would fail the same way); a chain moves on or is cancelled.
        """
        # Most ends: one fenced UPDATE on a bare connection. When it changes
        # nothing (fenced out, a chain follows, a cancel was asked) the locked
        # path decides.
        if (
            status is Status.COMPLETED
            and logs is not None
            and self._complete(tache_id, attempt, result, logs, progress)
        ):
            return Status.COMPLETED
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None or row["attempts"] != attempt or row["status"] != Status.RUNNING.value:
                return None
            return self._end(
                conn, row, status, result=result, logs=logs, progress=progress, retry=retry
            )

    _completions: dict[bool, Prepared] | None = None

    def _completion(self, with_progress: bool) -> Prepared:
        """``UPDATE`` to COMPLETED, fenced, for a task no chain follows and no cancel asked."""
        if self._completions is None:
            t = taches_table.c
            prepared: dict[bool, Prepared] = {}
            for progress in (False, True):
                values: dict[str, Any] = {
                    "status": Status.COMPLETED.value,
                    "ended_at": bindparam("b_ended_at", type_=t.ended_at.type),
                    "heartbeat_at": None,
                    "result": bindparam("b_result", type_=t.result.type),
                    "logs": bindparam("b_logs", type_=t.logs.type),
                }
                if progress:
                    values["progress"] = bindparam("b_progress", type_=t.progress.type)
                statement = (
                    update(taches_table)
                    .where(
                        (t.id == bindparam("b_id"))
                        & (t.attempts == bindparam("b_attempt"))
                        & (t.status == _RUNNING)
                        & t.next_id.is_(None)
                        & t.cancel_requested_at.is_(None)
                    )
                    .values(**values)
                )
                prepared[progress] = Prepared(statement, self.engine.dialect)
            self._completions = prepared
        return self._completions[with_progress]

    def _complete(
        self,
        tache_id: int,
        attempt: int,
        result: Any,
        logs: list[dict[str, Any]],
        progress: dict[str, Any] | None,
    ) -> bool:
        """Record COMPLETED in one statement; False when the row did not match."""
        prepared = self._completion(progress is not None)
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
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            raw = self._raw_connection()
        except dbapi_error:
            return False  # the locked path tries again, and raises as SQLAlchemy does
        try:
            cursor = raw.cursor()
            try:
                self._raw_begin(cursor)
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
            return False  # nothing committed: the locked path decides
        finally:
            raw.close()

    def _raw_connection(self) -> Any:
        """A DBAPI connection for :class:`Prepared` statements."""
        return self.engine.raw_connection()

    def _raw_begin(self, cursor: Any) -> None:
        """Begin a write transaction on a bare DBAPI cursor (drivers begin implicitly)."""

    # -- transitions shared by the runner and the rescue ------------------------

    def _end(
        self,
        conn: Connection,
        row: dict[str, Any],
        status: Status,
        *,
        result: Any = None,
        logs: list[dict[str, Any]] | None = None,
        progress: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Status:
        """Apply an attempt's end to a locked RUNNING row: retry, finish, chain."""
        now = utcnow()
        logs = list(row["logs"] or []) if logs is None else list(logs)
        values: dict[str, Any] = {"ended_at": now, "heartbeat_at": None, "result": result}
        if progress is not None:
            values["progress"] = progress
        final = status
        retryable = status in (Status.FAILED, Status.INTERRUPTED)
        attempts_left = retry and row["attempts"] < (row["max_attempts"] or 1)
        if retryable and row["cancel_requested_at"] is not None:
            # Its process ended before acting on the cancel: the cancel stands.
            final = Status.CANCELLED
            asker = row["cancel_requested_by"] or "someone"
            logs.append(
                log_entry(
                    "warning",
                    f"cancelled by {asker}: attempt {row['attempts']} ended {status.value} "
                    "before acting on it, so it is not retried",
                )
            )
        elif retryable and attempts_left:
            delay = retry_delay(row["attempts"], self.retry_base)
            final = Status.TO_RUN
            values["run_at"] = now + timedelta(seconds=delay)
            logs.append(
                log_entry(
                    "warning",
                    f"attempt {row['attempts']} of {row['max_attempts']} ended {status.value}; "
                    f"retrying in {delay:.1f}s",
                )
            )
        values["status"] = final.value
        values["logs"] = logs
        conn.execute(update(taches_table).where(taches_table.c.id == row["id"]).values(**values))
        if final is Status.TO_RUN:
            self.notify_added(conn, row["queue"])
        if row["next_id"] is not None and final is not Status.TO_RUN:
            self._follow_chain(conn, row["id"], row["next_id"], final)
        return final

    def _follow_chain(
        self,
        conn: Connection,
        tache_id: int,
        next_id: int,
        ended: Status,
        reason: str | None = None,
    ) -> None:
        """Start the next task of a chain, or cancel the rest of it (logging ``reason``)."""
        t = taches_table.c
        if ended is Status.COMPLETED:
            now = utcnow()
            conn.execute(
                update(taches_table)
                .where((t.id == next_id) & (t.status == Status.WAITING.value))
                # Not before its own run_at, if that is later than now.
                .values(
                    status=Status.TO_RUN.value, run_at=case((t.run_at > now, t.run_at), else_=now)
                )
            )
            self.notify_added(conn, "")
            return
        reason = reason or f"cancelled: task {tache_id} before it in the chain ended {ended.value}"
        current: int | None = next_id
        seen: set[int] = set()
        while current is not None and current not in seen:
            seen.add(current)
            row = self.lock_row(conn, current)
            if row is None or row["status"] != Status.WAITING.value:
                return
            conn.execute(
                update(taches_table)
                .where(t.id == current)
                .values(
                    status=Status.CANCELLED.value,
                    ended_at=utcnow(),
                    logs=[*(row["logs"] or []), log_entry("warning", reason)],
                )
            )
            current = row["next_id"]

    def cancel_now(self, tache_id: int, who: str | None) -> Status | None:
        """Cancel a task that is not RUNNING; for a RUNNING one, raise its flag.

        Returns the status after the call (CANCELLED, or RUNNING when the task's
        process will stop itself), None when the task is already finished.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise TacheNotFound(f"no task with id {tache_id}")
            status = Status(row["status"])
            if status.is_finished:
                return None
            asker = who or "anonymous"
            now = utcnow()
            if status is Status.RUNNING:
                conn.execute(
                    update(taches_table)
                    .where(taches_table.c.id == tache_id)
                    .values(cancel_requested_at=now, cancel_requested_by=asker)
                )
                return Status.RUNNING
            logs = [
                *(row["logs"] or []),
                log_entry("warning", f"cancelled by {asker} at {now.isoformat()}"),
            ]
            conn.execute(
                update(taches_table)
                .where(taches_table.c.id == tache_id)
                .values(status=Status.CANCELLED.value, ended_at=now, logs=logs)
            )
            if row["next_id"] is not None:
                self._follow_chain(conn, tache_id, row["next_id"], Status.CANCELLED)
            return Status.CANCELLED

    def restart(self, tache_id: int) -> None:
        """Put a finished task back to TO_RUN (attempts are kept, so fencing holds)."""
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise TacheNotFound(f"no task with id {tache_id}")
            if not Status(row["status"]).is_finished:
                raise InvalidTransition(f"task {tache_id} is {row['status']}: nothing to restart")
            budget = max(int(row["max_attempts"] or 1), int(row["attempts"] or 0) + 1)
            conn.execute(
                update(taches_table)
                .where(taches_table.c.id == tache_id)
                .values(
                    status=Status.TO_RUN.value,
                    run_at=utcnow(),
                    ended_at=None,
                    result=None,
                    pid=None,
                    heartbeat_at=None,
                    cancel_requested_at=None,
                    cancel_requested_by=None,
                    max_attempts=budget,
                    logs=[*(row["logs"] or []), log_entry("info", "restarted")],
                )
            )
            self.notify_added(conn, row["queue"])

    def delete(self, tache_id: int) -> None:
        """Delete a task that is not RUNNING (its file is the caller's business)."""
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise TacheNotFound(f"no task with id {tache_id}")
            if row["status"] == _RUNNING:
                raise InvalidTransition(f"task {tache_id} is RUNNING: cancel it first")
            self._delete_ids(conn, [tache_id])

    def purge_batch(self, statuses: Sequence[str], ended_before: datetime, limit: int) -> list[int]:
        """Delete up to ``limit`` tasks in ``statuses`` that ended before a date; their ids."""
        t = taches_table.c
        with self.write() as conn:
            ids = list(
                conn.execute(
                    select(t.id)
                    .where(t.status.in_(list(statuses)) & (t.ended_at < ended_before))
                    .order_by(t.id)
                    .limit(limit)
                ).scalars()
            )
            if ids:
                self._delete_ids(conn, ids)
        return ids

    def _delete_ids(self, conn: Connection, ids: Sequence[int]) -> None:
        t = taches_table.c
        # The tasks waiting on a deleted one would wait forever: cancel them.
        chained = conn.execute(
            select(t.id, t.next_id).where(t.id.in_(list(ids)) & t.next_id.is_not(None))
        ).all()
        for tache_id, next_id in chained:
            if next_id not in ids:
                reason = f"cancelled: task {tache_id} before it in the chain was deleted"
                self._follow_chain(conn, tache_id, next_id, Status.CANCELLED, reason)
        # Unlink first: SQLite does not enforce the foreign key's ON DELETE SET NULL.
        conn.execute(update(taches_table).where(t.next_id.in_(list(ids))).values(next_id=None))
        conn.execute(delete(taches_table).where(t.id.in_(list(ids))))

    # -- the manager: claiming, supervision, rescue, wake-ups --------------------

    #: Whether the claim's SELECT takes row locks with ``FOR UPDATE SKIP LOCKED``.
    skip_locked = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that take no write lock (SQLite: no ``BEGIN IMMEDIATE``)."""
        with self.engine.connect() as conn:
            yield conn

    @staticmethod
    def _count_running(conn: Connection) -> int:
        t = taches_table.c
        query = select(func.count()).select_from(taches_table).where(t.status == _RUNNING)
        return int(conn.execute(query).scalar_one())

    def count_running(self) -> int:
        """How many tasks are RUNNING, all managers and hosts together."""
        with self.read() as conn:
            return self._count_running(conn)

    @staticmethod
    def _ready(now: datetime, queues: Sequence[str] | None) -> Any:
        t = taches_table.c
        clause = (t.status == _TO_RUN) & (t.run_at.is_(None) | (t.run_at <= now))
        if queues:
            clause &= t.queue.in_(list(queues))
        return clause

    def _claimable(
        self, conn: Connection, max_running: int | None, queues: Sequence[str] | None
    ) -> bool:
        """A cheap read: is a task ready, and a slot free under ``max_running``?"""
        if max_running is not None and self._count_running(conn) >= max_running:
            return False
        ready = select(exists().where(self._ready(utcnow(), queues)))
        return bool(conn.execute(ready).scalar())

    def claim_batch(
        self,
        limit: int,
        *,
        max_running: int,
        queues: Sequence[str] | None = None,
        hostname: str | None = None,
        started: Mapping[int, tuple[int, int]] | None = None,
        expect_work: bool = False,
    ) -> list[Claimed]:
        """Make up to ``limit`` ready tasks RUNNING, in claim order; returns them.

        Claim order: ``priority`` (higher first), then ``run_at``, then ``id``;
        a task whose ``run_at`` is in the future is not ready. The count of
        RUNNING tasks is read inside the same locked transaction as the claim,
        so all managers together never exceed ``max_running``, and a task is
        claimed by one of them only.

        ``started`` (``{id: (attempt, pid)}``) are recorded in the same
        transaction, as :meth:`record_pids` would. ``expect_work`` says the
        caller's last claim was full: a store that looks before it locks
        (SQLite) goes straight to the claim.
        """
        if limit <= 0 or max_running <= 0:
            self.record_pids(started or {}, hostname)
            return []
        with self._claim_transaction() as conn:
            if started:
                self._record_pids_in(conn, started, hostname)
            return self._claim_in(conn, limit, max_running, queues, hostname)

    @contextmanager
    def _claim_transaction(self) -> Iterator[Connection]:
        """The transaction a claim runs in, holding the database-wide claim lock."""
        with self.write() as conn:
            yield conn

    def _claim_in(
        self,
        conn: Connection,
        limit: int,
        max_running: int,
        queues: Sequence[str] | None,
        hostname: str | None,
    ) -> list[Claimed]:
        wanted = min(limit, max_running - self._count_running(conn))
        if wanted <= 0:
            return []
        now = utcnow()
        t = taches_table.c
        query = (
            select(taches_table)
            .where(self._ready(now, queues))
            .order_by(t.priority.desc(), t.run_at, t.id)
            .limit(wanted)
        )
        if self.skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        claim = {
            "status": _RUNNING,
            "started_at": now,
            "ended_at": None,
            "heartbeat_at": now,
            "hostname": hostname,
            "pid": None,
            "cancel_requested_at": None,
            "cancel_requested_by": None,
        }
        # Conditional on TO_RUN: under the claim lock every row matches, and a
        # mismatch would mean another writer claimed without it (refuse, roll back).
        changed = conn.execute(
            update(taches_table)
            .where(t.id.in_(ids) & (t.status == _TO_RUN))
            .values(
                status=_RUNNING,
                attempts=t.attempts + 1,
                started_at=now,
                ended_at=None,
                heartbeat_at=now,
                hostname=hostname,
                pid=None,
                cancel_requested_at=None,
                cancel_requested_by=None,
            )
        ).rowcount
        if changed != len(ids):
            raise RuntimeError(f"claim of {ids} changed {changed} rows: claim lock bypassed")
        claimed = []
        for row in rows:
            attempt = int(row.attempts or 0) + 1
            values = {**row._mapping, **claim, "attempts": attempt}
            claimed.append(Claimed(row.id, attempt, row.method, row.timeout, row.queue, values))
        return claimed

    def record_pids(self, started: Mapping[int, tuple[int, int]], hostname: str | None) -> None:
        """Record the process of each just-forked task (``{id: (attempt, pid)}``).

        The manager knows a forked child's pid as soon as it exists, so the
        child need not open a connection to say it. Fenced like ``mark_started``
        (an attempt already ended or superseded is left alone).
        """
        if not started:
            return
        with self.write() as conn:
            self._record_pids_in(conn, started, hostname)

    @staticmethod
    def _record_pids_in(
        conn: Connection, started: Mapping[int, tuple[int, int]], hostname: str | None
    ) -> None:
        t = taches_table.c
        query = (
            update(taches_table)
            .where(
                (t.id == bindparam("b_id"))
                & (t.attempts == bindparam("b_attempt"))
                & (t.status == _RUNNING)
                & t.pid.is_(None)
            )
            .values(pid=bindparam("b_pid"), hostname=hostname)
        )
        rows = [{"b_id": i, "b_attempt": a, "b_pid": pid} for i, (a, pid) in started.items()]
        conn.execute(query, rows)

    def attempts_state(self, ids: Sequence[int]) -> dict[int, AttemptState]:
        """Where the given tasks stand now (the manager supervising its children)."""
        if not ids:
            return {}
        t = taches_table.c
        with self.read() as conn:
            rows = conn.execute(
                select(
                    t.id, t.status, t.attempts, t.cancel_requested_at, t.cancel_requested_by, t.pid
                ).where(t.id.in_(list(ids)))
            ).all()
        return {
            row.id: AttemptState(
                Status(row.status),
                int(row.attempts or 0),
                row.cancel_requested_at,
                row.cancel_requested_by,
                row.pid,
            )
            for row in rows
        }

    def beat_unstarted(self, attempts: Mapping[int, int]) -> int:
        """Beat for claimed tasks whose process has not started yet (``{id: attempt}``).

        Until the task's own process records its pid, its manager answers for
        it: a slow start (a spawned interpreter on a loaded machine) must not
        look like a dead task. Returns how many rows were touched.
        """
        if not attempts:
            return 0
        t = taches_table.c
        mine = or_(*((t.id == i) & (t.attempts == a) for i, a in attempts.items()))
        with self.write() as conn:
            return conn.execute(
                update(taches_table)
                .where(mine & (t.status == _RUNNING) & t.pid.is_(None))
                .values(heartbeat_at=utcnow())
            ).rowcount

    def end_attempt(
        self, tache_id: int, attempt: int, status: Status, message: str
    ) -> Status | None:
        """End an attempt whose process cannot (it died, or the manager stopped it).

        Fenced like the task's own writes; ``message`` is logged as an error.
        Returns the status stored (TO_RUN when a retry is due), None when the
        attempt had already ended or was superseded.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None or row["attempts"] != attempt or row["status"] != _RUNNING:
                return None
            logs = [*(row["logs"] or []), log_entry("error", message)]
            return self._end(conn, row, status, logs=logs)

    def rescue(
        self,
        *,
        heartbeat_timeout: float,
        hostname: str | None,
        is_alive: Callable[[int], bool],
    ) -> list[Rescued]:
        """INTERRUPT the RUNNING tasks whose process is dead; returns what it did.

        Dead means: no heartbeat for ``heartbeat_timeout`` seconds, or, on this
        ``hostname``, a recorded pid that ``is_alive`` says is gone. On this host
        a live pid outweighs a silent heartbeat: a task holding the GIL in a long
        C call, or waiting on a lock, misses beats while it works; its timeout
        (see :meth:`overdue_here`) stops it, not its silence.
        """
        now = utcnow()
        cutoff = now - timedelta(seconds=heartbeat_timeout)
        t = taches_table.c
        stale = t.heartbeat_at.is_(None) | (t.heartbeat_at < cutoff)
        local = (t.hostname == hostname) & t.pid.is_not(None) if hostname else false()
        with self.read() as conn:
            rows = conn.execute(
                select(t.id, t.attempts, t.pid, t.hostname, t.heartbeat_at).where(
                    (t.status == _RUNNING) & (stale | local)
                )
            ).all()
        rescued: list[Rescued] = []
        for row in rows:
            stale_before: datetime | None = None
            here = row.pid is not None and hostname is not None and row.hostname == hostname
            if row.heartbeat_at is None or row.heartbeat_at < cutoff:
                if here and is_alive(row.pid):
                    continue
                silent = (now - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
                reason = (
                    f"no heartbeat for {silent:.1f}s (limit {heartbeat_timeout:g}s)"
                    if silent is not None
                    else "RUNNING without any heartbeat"
                )
                stale_before = cutoff
            elif here and not is_alive(row.pid):
                reason = f"process {row.pid} on {hostname} is gone without recording an end"
            else:
                continue
            final = self._interrupt_if(row.id, row.attempts, reason, stale_before)
            if final is not None:
                rescued.append(Rescued(row.id, int(row.attempts), final, reason))
        return rescued

    def overdue_here(self, hostname: str, grace: float) -> list[Overdue]:
        """RUNNING tasks of this host still running ``grace`` s past their timeout."""
        t = taches_table.c
        with self.read() as conn:
            rows = conn.execute(
                select(t.id, t.attempts, t.pid, t.started_at, t.timeout).where(
                    (t.status == _RUNNING)
                    & (t.hostname == hostname)
                    & t.pid.is_not(None)
                    & t.timeout.is_not(None)
                )
            ).all()
        now = utcnow()
        return [
            Overdue(row.id, int(row.attempts), int(row.pid), row.started_at, float(row.timeout))
            for row in rows
            if row.started_at is not None
            and now > row.started_at + timedelta(seconds=float(row.timeout) + grace)
        ]

    def _interrupt_if(
        self, tache_id: int, attempt: int, reason: str, stale_before: datetime | None
    ) -> Status | None:
        """INTERRUPT one attempt if it is still the RUNNING one judged dead.

        With ``stale_before``, a heartbeat written since the first read saves it.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None or row["attempts"] != attempt or row["status"] != _RUNNING:
                return None
            beat = row["heartbeat_at"]
            if stale_before is not None and beat is not None and beat >= stale_before:
                return None  # it beat meanwhile: alive after all
            logs = [*(row["logs"] or []), log_entry("error", reason)]
            return self._end(conn, row, Status.INTERRUPTED, logs=logs)

    def warm_up(self) -> None:
        """Run each statement of a task's process once on a row that does not exist.

        SQLAlchemy caches compiled statements per engine; a forked child starts
        with its parent's cache, so a warm manager spares every task the
        compilation. Nothing is written: no row has id 0.
        """
        with self.read() as conn:
            conn.execute(select(taches_table).where(taches_table.c.id == 0)).first()
        self.mark_started(0, 0, 0, "")
        self.save_live(0, 0, logs=[], progress={})
        self.beat(0, 0)
        self.finish(0, 0, Status.COMPLETED, logs=[], progress={})

    def listener(
        self, *, queues: Sequence[str] | None = None, max_running: int | None = None
    ) -> Listener:
        """What an idle manager waits on for new work (here: the poll timer only)."""
        return Listener()

    def stats(self, windows: Sequence[int] = (1, 5, 15)) -> dict[str, Any]:
        """Counts by status and queue, oldest ready TO_RUN age, tasks ended per window.

        ``windows`` are in minutes; ``throughput`` gives, for each, how many tasks
        ended in it and the rate per minute.
        """
        now = utcnow()
        t = taches_table.c
        with self.read() as conn:
            counts = conn.execute(
                select(t.status, t.queue, func.count()).group_by(t.status, t.queue)
            ).all()
            oldest = conn.execute(
                select(func.min(t.run_at)).where(self._ready(now, None))
            ).scalar_one()
            ended: dict[int, dict[str, int]] = {}
            for minutes in windows:
                since = now - timedelta(minutes=minutes)
                rows = conn.execute(
                    select(t.status, func.count())
                    .where((t.ended_at >= since) & t.status.in_(_FINISHED))
                    .group_by(t.status)
                ).all()
                ended[minutes] = {status: int(n) for status, n in rows}
        by_status: dict[str, int] = {s.value: 0 for s in Status}
        by_queue: dict[str, dict[str, int]] = {}
        for status, queue, n in counts:
            by_status[status] = by_status.get(status, 0) + int(n)
            by_queue.setdefault(queue, {})[status] = int(n)
        return {
            "at": now.isoformat(),
            "by_status": by_status,
            "by_queue": by_queue,
            "oldest_to_run_age": (now - oldest).total_seconds() if oldest is not None else None,
            "throughput": [
                {
                    "minutes": minutes,
                    "ended": sum(ended[minutes].values()),
                    "by_status": ended[minutes],
                    "per_minute": round(sum(ended[minutes].values()) / minutes, 2),
                }
                for minutes in windows
            ],
        }

    # -- hooks the manager builds on (dialect-specific) --------------------------

    def notify_added(self, conn: Connection, queue: str) -> None:
        """Wake idle managers after an insert (PostgreSQL only; others poll)."""

    def latest_ids(self, conn: Connection, signatures: Sequence[str]) -> dict[str, int]:
        """The newest task id of each signature."""
        if not signatures:
            return {}
        t = taches_table.c
        rows = conn.execute(
            select(t.signature, func.max(t.id))
            .where(t.signature.in_(list(signatures)))
            .group_by(t.signature)
        ).all()
        return {signature: tache_id for signature, tache_id in rows}


class SQLiteStore(Store):
    """SQLite: one writer at a time; ``BEGIN IMMEDIATE`` takes the lock up front."""

    dialect = "sqlite"

    def _raw_begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def _raw_connection(self) -> Any:
        # The pool and its connect event cost a just-forked process more than the
        # write itself. WAL is the file's own (set by the engine's first connection,
        # always made before a task ends); synchronous is per connection.
        path = self.engine.url.database
        if not path or path == ":memory:" or self.engine.url.query:
            return super()._raw_connection()
        dbapi = self.engine.dialect.loaded_dbapi
        raw = dbapi.connect(path, timeout=SQLITE_BUSY_TIMEOUT, isolation_level=None)
        raw.execute("PRAGMA synchronous=NORMAL")
        return raw

    @staticmethod
    def own_engine(app_engine: Engine) -> Engine:
        """An engine on the same file whose transactions begin IMMEDIATE.

        The application's engine is left as it is; this one also turns on WAL so
        readers (pages) never wait for writers (tasks).
        """
        url = make_url(str(app_engine.url.render_as_string(hide_password=False)))
        engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT},
        )

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
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    _reader: Engine | None = None

    def _read_engine(self) -> Engine:
        """Plain autocommit connections on the same file: reads never take the write lock."""
        if self._reader is None:
            self._reader = create_engine(
                self.engine.url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT},
            )
        return self._reader

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._read_engine().connect() as conn:
            yield conn

    def dispose_after_fork(self) -> None:
        # Both engines are NullPool: no connection is kept, so none can be shared
        # with the parent, and rebuilding their pools would only cost the child.
        return

    def claim_batch(
        self,
        limit: int,
        *,
        max_running: int,
        queues: Sequence[str] | None = None,
        hostname: str | None = None,
        started: Mapping[int, tuple[int, int]] | None = None,
        expect_work: bool = False,
    ) -> list[Claimed]:
        # Read first, without the write lock: most wake-ups of an idle manager
        # find nothing to claim, and running tasks need that lock to beat and end.
        if not expect_work:
            with self.read() as conn:
                claimable = self._claimable(conn, max_running, queues)
            if not claimable:
                self.record_pids(started or {}, hostname)
                return []
        return super().claim_batch(
            limit, max_running=max_running, queues=queues, hostname=hostname, started=started
        )

    def listener(
        self, *, queues: Sequence[str] | None = None, max_running: int | None = None
    ) -> Listener:
        """Watches the database's files for commits by others (a stat every few ms)."""
        path = self.engine.url.database
        if not path or path == ":memory:":
            return Listener()

        def claimable() -> bool:
            with self.read() as conn:
                return self._claimable(conn, max_running, queues)

        return SQLiteListener(os.path.abspath(path), claimable)

    def lock_row(self, conn: Connection, tache_id: int) -> dict[str, Any] | None:
        # The IMMEDIATE transaction already holds the database's write lock.
        row = (
            conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None


class PostgresStore(Store):
    """PostgreSQL: row locks, ``SKIP LOCKED`` claims and ``LISTEN/NOTIFY`` wake-ups."""

    dialect = "postgresql"
    CHANNEL = "taches_added"
    skip_locked = True

    @contextmanager
    def _claim_transaction(self) -> Iterator[Connection]:
        # The advisory lock serialises claims (released at commit), so the RUNNING
        # count each claim reads (READ COMMITTED: a fresh snapshot) includes the
        # claims committed before it; SKIP LOCKED passes rows others hold.
        with self.write() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_CLAIM_LOCK_KEY}
            )
            yield conn

    def listener(
        self, *, queues: Sequence[str] | None = None, max_running: int | None = None
    ) -> Listener:
        """``LISTEN`` on a connection of its own (psycopg 3); other drivers poll."""
        fairy = self.engine.raw_connection()
        driver = fairy.driver_connection
        if not callable(getattr(driver, "notifies", None)):
            fairy.close()
            return Listener()
        return PostgresListener(fairy, self.CHANNEL)

    def notify_added(self, conn: Connection, queue: str) -> None:
        conn.execute(
            text("SELECT pg_notify(:channel, :queue)"), {"channel": self.CHANNEL, "queue": queue}
        )


class MySQLStore(Store):
    """MySQL 8 / MariaDB 10.6+: row locks and ``SKIP LOCKED`` claims; managers poll."""

    dialect = "mysql"
    skip_locked = True

    @contextmanager
    def _claim_transaction(self) -> Iterator[Connection]:
        # GET_LOCK (named after the database: the lock is server-wide) serialises
        # claims; taken before the transaction so that its first read, the RUNNING
        # count, sees every claim committed before. READ COMMITTED: no gap locks
        # that would make add() wait on a claim.
        # Hashed: MySQL 8 refuses lock names over 64 characters, database names go to 64.
        lock_name = "CONCAT('taches_claim.', SHA1(DATABASE()))"
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            got = conn.execute(
                text(f"SELECT GET_LOCK({lock_name}, :wait)"), {"wait": MYSQL_CLAIM_LOCK_WAIT}
            ).scalar()
            conn.commit()
            if got != 1:
                raise TimeoutError(f"claim lock not granted within {MYSQL_CLAIM_LOCK_WAIT}s")
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.execute(text(f"SELECT RELEASE_LOCK({lock_name})"))
                conn.commit()


def _readable(fds: Sequence[int | None], timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for one of ``fds`` to be readable; the readable ones."""
    wanted = [fd for fd in fds if fd is not None]
    if not wanted:
        time.sleep(max(0.0, timeout))
        return []
    ready, _, _ = _select.select(wanted, [], [], max(0.0, timeout))
    return ready


class Listener:
    """What an idle manager sleeps on; this base one only waits (the poll timer).

    :meth:`wait` returns True when work may have arrived (notified, or a
    change seen), False when ``timeout`` passed or ``wake_fd`` became readable.
    """

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        _readable([wake_fd], timeout)
        return False

    def close(self) -> None:
        """Release what the listener holds (nothing here)."""


class SQLiteListener(Listener):
    """Watches the database's files: every commit writes the WAL (or the file itself).

    It keeps no connection open: the manager forks its children while it
    waits, and a SQLite connection open across a fork shares its locking state
    with the child. A change is confirmed with one short read (``claimable``).
    """

    def __init__(self, path: str, claimable: Callable[[], bool]) -> None:
        self._paths = (f"{path}-wal", path)
        self._claimable = claimable
        self._seen = self._signature()

    def _signature(self) -> tuple[tuple[int, int, int] | None, ...]:
        found: list[tuple[int, int, int] | None] = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                found.append(None)
            else:
                found.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(found)

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            signature = self._signature()
            if signature != self._seen:
                self._seen = signature
                if self._claimable():
                    return True
            left = deadline - time.monotonic()
            if left <= 0 or _readable([wake_fd], min(SQLITE_WATCH, left)):
                return False


class PostgresListener(Listener):
    """``LISTEN`` on its own psycopg 3 connection, closed (never pooled) after."""

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
        return fd in _readable([fd, wake_fd], timeout) and self._drain()

    def close(self) -> None:
        # A LISTENing connection must not go back to the pool.
        if self._fairy.is_valid:
            self._fairy.invalidate()
