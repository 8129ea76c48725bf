"""The store: every write to the ``taches`` table that races with other processes.

Views and the service read through the application's ``db.session``; each
state change that another process may make at the same time (claiming, a
task's own writes, its end, retries, chains, rescue, cancel) goes through a
store, which speaks SQLAlchemy Core on its own connections so that it never
commits a session a task or a view is using.

What the change *is* comes from :mod:`flask_taches.lifecycle`; the store reads
the row under a lock, asks for the plan, and applies it. What differs per
database (the claim transaction, the wake-up source, inserts) is in that
database's own module: :mod:`.sqlite`, :mod:`.postgresql`, :mod:`.mysql`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from .. import lifecycle
from ..clock import utcnow
from ..exceptions import InvalidTransition, no_such_task
from ..models import taches_table
from ..status import Status
from . import statements as sql
from .chains import ChainVerbs
from .claims import ClaimVerbs
from .fast import FastCompletion, warm_up
from .forking import ForkVerbs
from .records import Asked, Beat
from .reports import ReportVerbs
from .restarts import RestartVerbs
from .slots import SlotVerbs
from .wakeups import WaitingFor, WakeSource

T = sql.T


class Store(ForkVerbs, ClaimVerbs, ChainVerbs, SlotVerbs, ReportVerbs, RestartVerbs):
    """Atomic operations on the table, for one database (see :func:`for_engine`)."""

    #: Whether the claim's SELECT takes row locks with ``FOR UPDATE SKIP LOCKED``.
    skip_locked = False
    #: Whether many processes claiming one task each cost no more than one claiming
    #: for them all: the claim lock is held for no round trip to a server (SQLite),
    #: so a pool child may claim its next task itself.
    cheap_single_claims = False
    #: ``same_text(column, value)``: exact equality of text (see :func:`.statements.same_text`).
    same_text = staticmethod(sql.same_text)
    #: ``minutes_since(column, start)``: whole minutes in SQL (:func:`.statements.minutes_since`).
    minutes_since = staticmethod(sql.minutes_since)

    def __init__(self, engine: Engine, retry_base: float = 10.0) -> None:
        self.engine = engine
        self.retry_base = retry_base
        self.fast_completion = FastCompletion(self)
        self._track_connections()

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``, so no upgrade deadlock)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that take no write lock (SQLite: no ``BEGIN IMMEDIATE``)."""
        with self.engine.connect() as conn:
            yield conn

    def lock_row(self, conn: Connection, tache_id: int) -> dict[str, Any] | None:
        """Read one row for update inside ``conn``'s write transaction."""
        return sql.read_row(conn, tache_id, for_update=True)

    def get_row(self, tache_id: int) -> dict[str, Any] | None:
        """One row as it is now, read without the write lock."""
        with self.read() as conn:
            return sql.read_row(conn, tache_id)

    def wake_source(self, wanted: WaitingFor) -> WakeSource:
        """What an idle manager waits on for ``wanted`` work (here: the poll timer only)."""
        return WakeSource()

    def raw_connection(self) -> Any:
        """A bare DBAPI connection, for the fast paths (:mod:`.fast`)."""
        return self.engine.raw_connection()

    def keep_connections(self) -> None:
        """In a process that runs many tasks and forks no other (a pool child): keep the
        connections between transactions (most stores' engines pool them already)."""

    def drop_connections(self) -> None:
        """Close the pooled connections, so that the next transaction opens a fresh one.

        After a failed write in a task's process: the task may have closed their
        descriptors (a pool child keeps its connections), or the server dropped
        them. Called at once, before anything opens a new descriptor that could
        take the number of one of theirs.
        """
        self.engine.dispose()

    def raw_begin(self, cursor: Any) -> None:
        """Begin a write transaction on a bare DBAPI cursor (drivers begin implicitly)."""

    def warm_up(self) -> None:
        """Compile every statement of a task's process here, before forking (:mod:`.fast`)."""
        warm_up(self)

    # -- a task's own process (every write fenced by its attempt) -------------------

    def claim_one(self, tache_id: int, *, force: bool = False, hostname: str | None = None) -> int:
        """Make one given task RUNNING (the ``run ID`` path); returns its attempt number.

        Without ``force`` the task must be TO_RUN; with it, anything but RUNNING.
        Raises :class:`TacheNotFound` or :class:`InvalidTransition`.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise no_such_task(tache_id)
            status = row["status"]
            if status == sql.RUNNING:
                raise InvalidTransition(f"task {tache_id} is already RUNNING")
            if not force and status != sql.TO_RUN:
                raise InvalidTransition(
                    f"task {tache_id} is {status}, not TO_RUN (use --force to run it anyway)"
                )
            attempt = int(row["attempts"] or 0) + 1
            sql.update_row(
                conn, tache_id, attempts=attempt, **sql.claimed_values(utcnow(), hostname)
            )
            return attempt

    def record_start(self, tache_id: int, attempt: int, pid: int, hostname: str) -> bool:
        """The task's process says who it is; False when its attempt was superseded."""
        with self.write() as conn:
            return self._fenced_update(conn, tache_id, attempt, pid=pid, hostname=hostname) == 1

    def record_live(
        self,
        tache_id: int,
        attempt: int,
        *,
        logs: list[dict[str, Any]] | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Write logs/progress of a running task and beat; False when fenced out."""
        values: dict[str, Any] = {}
        if logs is not None:
            values["logs"] = logs
        if progress is not None:
            values["progress"] = progress
        with self.write() as conn:
            return self._fenced_update(conn, tache_id, attempt, **values) == 1

    def beat(self, tache_id: int, attempt: int) -> Beat:
        """Heartbeat; says whether the attempt still owns the row and if a cancel was asked."""
        with self.write() as conn:
            if self._fenced_update(conn, tache_id, attempt) != 1:
                return Beat(owned=False)
            row = conn.execute(
                select(T.cancel_requested_at, T.cancel_requested_by).where(T.id == tache_id)
            ).first()
        if row is None or row.cancel_requested_at is None:
            return Beat(owned=True)
        return Beat(True, row.cancel_requested_by or lifecycle.NOBODY, row.cancel_requested_at)

    @staticmethod
    def _fenced_update(conn: Connection, tache_id: int, attempt: int, **values: Any) -> int:
        """A write of this attempt's process, which always beats too."""
        statement = update(taches_table).where(sql.fenced(tache_id, attempt))
        return conn.execute(statement.values(heartbeat_at=utcnow(), **values)).rowcount

    # -- ends of attempts -----------------------------------------------------------

    def record_end(
        self,
        tache_id: int,
        attempt: int,
        status: Status,
        *,
        result: Any = None,
        logs: list[dict[str, Any]] | None = None,
        progress: dict[str, Any] | None = None,
        retry: bool = True,
        asked: Asked | None = None,
    ) -> Status | None:
        """The task's own process records how its attempt ended (with its whole log).

        Returns the status stored (TO_RUN when a retry was scheduled), None when
        fenced out. ``retry`` False: another attempt would fail the same way;
        ``asked``: the task asked for a retry (``tache.retry``).
        """
        if (
            status is Status.COMPLETED
            and logs is not None
            and self.fast_completion.complete(tache_id, attempt, result, logs, progress)
        ):
            return Status.COMPLETED
        with self.write() as conn:
            row = self._running_row(conn, tache_id, attempt)
            if row is None:
                return None
            return self._apply_end(conn, row, status, result, logs, progress, retry, asked)

    def end_on_behalf(
        self, tache_id: int, attempt: int, status: Status, reason: str
    ) -> Status | None:
        """End an attempt whose process cannot (it died, or its manager stopped it).

        Fenced like the task's own writes; ``reason`` is logged as an error.
        Returns the status stored, None when the attempt had already ended.
        """
        with self.write() as conn:
            row = self._running_row(conn, tache_id, attempt)
            if row is None:
                return None
            logs = self._with_entries(row, (lifecycle.log_entry("error", reason, utcnow()),))
            return self._apply_end(conn, row, status, None, logs, None, True)

    def interrupt_if_dead(
        self, tache_id: int, attempt: int, verdict: lifecycle.Verdict
    ) -> Status | None:
        """INTERRUPT an attempt judged dead, if a heartbeat since has not proved it alive."""
        with self.write() as conn:
            row = self._running_row(conn, tache_id, attempt)
            if row is None or not lifecycle.still_dead(verdict, row["heartbeat_at"]):
                return None
            entry = lifecycle.log_entry("error", verdict.reason, utcnow())
            logs = self._with_entries(row, (entry,))
            return self._apply_end(conn, row, Status.INTERRUPTED, None, logs, None, True)

    def _running_row(self, conn: Connection, tache_id: int, attempt: int) -> dict[str, Any] | None:
        """The row locked, if it is still this attempt's and RUNNING."""
        row = self.lock_row(conn, tache_id)
        if row is None or row["attempts"] != attempt or row["status"] != sql.RUNNING:
            return None
        return row

    def _apply_end(
        self,
        conn: Connection,
        row: dict[str, Any],
        ended: Status,
        result: Any,
        logs: list[dict[str, Any]] | None,
        progress: dict[str, Any] | None,
        retry: bool,
        asked: Asked | None = None,
    ) -> Status:
        now = utcnow()
        plan = lifecycle.end_attempt(
            lifecycle.Running.of(row),
            ended,
            now=now,
            retry_base=self.retry_base,
            # A fresh generator each time: forked children must not share one's state.
            rng=random.Random(),
            retry=retry,
            retry_in=asked.delay if asked is not None else None,
            asked=asked is not None,
        )
        kept = list(row["logs"] or []) if logs is None else logs
        values: dict[str, Any] = {
            "status": plan.status.value,
            "ended_at": now,
            "heartbeat_at": None,
            "result": result,
            "logs": [*kept, *plan.entries],
        }
        if progress is not None:
            values["progress"] = progress
        if plan.run_at is not None:
            values["run_at"] = plan.run_at
        sql.update_row(conn, row["id"], **values)
        if plan.retrying:
            self.notify_added(conn, row["queue"])
        self._follow_chain(conn, plan.chain, now)
        return plan.status

    @staticmethod
    def _with_entries(row: dict[str, Any], entries: Sequence[dict[str, Any]]) -> list[Any]:
        return [*(row["logs"] or []), *entries]

    # -- what users ask for ---------------------------------------------------------

    def request_cancel(self, tache_id: int, who: str | None) -> Status | None:
        """Cancel a task: at once when it is not RUNNING, else by raising its flag.

        Returns the status after the call (CANCELLED, or RUNNING when the task's
        own process will stop itself), None when the task is already finished.
        """
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise no_such_task(tache_id)
            now = utcnow()
            plan = lifecycle.cancel(tache_id, Status(row["status"]), row["next_id"], who, now)
            if plan is None:
                return None
            if plan.flag_only:
                sql.update_row(
                    conn, tache_id, cancel_requested_at=now, cancel_requested_by=plan.asker
                )
                return Status.RUNNING
            sql.update_row(
                conn,
                tache_id,
                status=plan.status.value,
                ended_at=now,
                logs=self._with_entries(row, plan.entries),
            )
            self._follow_chain(conn, plan.chain, now)
            return plan.status

    def delete(self, tache_id: int) -> None:
        """Delete a task that is not RUNNING (its file is the caller's business)."""
        with self.write() as conn:
            row = self.lock_row(conn, tache_id)
            if row is None:
                raise no_such_task(tache_id)
            if row["status"] == sql.RUNNING:
                raise InvalidTransition(f"task {tache_id} is RUNNING: cancel it first")
            self._delete_ids(conn, [tache_id])

    def purge_batch(self, statuses: Sequence[str], ended_before: datetime, limit: int) -> list[int]:
        """Delete up to ``limit`` tasks in ``statuses`` that ended before a date; their ids."""
        with self.write() as conn:
            ids = list(
                conn.execute(
                    select(T.id)
                    .where(T.status.in_(list(statuses)) & (T.ended_at < ended_before))
                    .order_by(T.id)
                    .limit(limit)
                ).scalars()
            )
            if ids:
                self._delete_ids(conn, ids)
        return ids

    def _delete_ids(self, conn: Connection, ids: Sequence[int]) -> None:
        chained = conn.execute(
            select(T.id, T.next_id).where(T.id.in_(list(ids)) & T.next_id.is_not(None))
        ).all()
        now = utcnow()
        for tache_id, next_id in chained:
            if next_id not in ids:
                self._follow_chain(conn, lifecycle.after_delete(tache_id, next_id), now)
        # Unlink first: SQLite does not enforce the foreign key's ON DELETE SET NULL.
        conn.execute(update(taches_table).where(T.next_id.in_(list(ids))).values(next_id=None))
        conn.execute(delete(taches_table).where(T.id.in_(list(ids))))
