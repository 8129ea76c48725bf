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

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from .exceptions import InvalidTransition, TacheNotFound
from .models import taches_table, utcnow
from .status import Status

SQLITE_BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock
MAX_RETRY_DELAY = 6 * 3600.0  # seconds: backoff never waits longer than this


def log_entry(level: str, message: str, details: Any = None) -> dict[str, Any]:
    """A log entry written by flask-taches itself (same shape as ``Tache.log``)."""
    return {"level": level, "message": message, "details": details, "at": utcnow().isoformat()}


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
        self.engine.dispose(close=False)

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
    ) -> Status | None:
        """Record the end of an attempt; returns the status stored, None if fenced out.

        A FAILED or INTERRUPTED attempt with attempts left goes back to TO_RUN
        with a backed-off ``run_at``; a chain moves on or is cancelled.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None or row["attempts"] != attempt or row["status"] != Status.RUNNING.value:
                return None
            return self._end(conn, row, status, result=result, logs=logs, progress=progress)

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
    ) -> Status:
        """Apply an attempt's end to a locked RUNNING row: retry, finish, chain."""
        now = utcnow()
        logs = list(row["logs"] or []) if logs is None else list(logs)
        values: dict[str, Any] = {"ended_at": now, "heartbeat_at": None, "result": result}
        if progress is not None:
            values["progress"] = progress
        final = status
        retryable = status in (Status.FAILED, Status.INTERRUPTED)
        if retryable and row["attempts"] < (row["max_attempts"] or 1):
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

    def _follow_chain(self, conn: Connection, tache_id: int, next_id: int, ended: Status) -> None:
        """Start the next task of a chain, or cancel the rest of it."""
        t = taches_table.c
        if ended is Status.COMPLETED:
            conn.execute(
                update(taches_table)
                .where((t.id == next_id) & (t.status == Status.WAITING.value))
                .values(status=Status.TO_RUN.value, run_at=utcnow())
            )
            self.notify_added(conn, "")
            return
        reason = f"cancelled: task {tache_id} before it in the chain ended {ended.value}"
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
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

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

    def notify_added(self, conn: Connection, queue: str) -> None:
        conn.execute(
            text("SELECT pg_notify(:channel, :queue)"), {"channel": self.CHANNEL, "queue": queue}
        )


class MySQLStore(Store):
    """MySQL 8 / MariaDB 10.6+: row locks and ``SKIP LOCKED`` claims; managers poll."""

    dialect = "mysql"
