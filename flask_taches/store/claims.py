"""The store's verbs for managers: claiming, recording pids, supervising, rescuing.

A claim reads the RUNNING count inside the same locked transaction as the
claim itself (the lock is each database's own: SQLite's write lock, MariaDB's
``GET_LOCK`` around ``_claim_transaction``, PostgreSQL's advisory lock in
:mod:`.claim_script`), so all managers together never exceed ``max_running``,
and a task is claimed by one of them only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    update,
)

from .. import lifecycle
from ..clock import utcnow
from ..models import taches_table
from ..status import Status
from . import statements as sql
from .records import AttemptState, ClaimAsk, Claimed, Overdue, Rescued

if TYPE_CHECKING:
    from .base import Store

T = sql.T
#: ``{id: (attempt, pid)}``: forked children whose pid their row does not hold yet.
Started = Mapping[int, tuple[int, int]]


class ClaimVerbs:
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    skip_locked: bool

    def _store(self) -> Store:
        return self  # type: ignore[return-value]

    def _claim_transaction(self) -> AbstractContextManager[Connection]:
        """The transaction a claim runs in (SQLite's holds the write lock from its start)."""
        return self._store().write()

    # -- reading the queue ----------------------------------------------------------

    @staticmethod
    def _count_running(conn: Connection) -> int:
        return int(conn.execute(select(sql.running_count())).scalar_one())

    def count_running(self) -> int:
        """How many tasks are RUNNING, all managers and hosts together."""
        with self._store().read() as conn:
            return self._count_running(conn)

    def _claimable(
        self,
        conn: Connection,
        max_running: int | None,
        queues: Sequence[str] | None,
        within: float = 0.0,
    ) -> bool:
        """A cheap read: is a task ready (or due ``within`` s), and a slot free?

        The ready task first: an idle manager's look finds none, in one statement.
        """
        due = utcnow() + timedelta(seconds=within)
        if not conn.execute(select(exists().where(sql.ready(due, queues)))).scalar():
            return False
        return max_running is None or self._count_running(conn) < max_running

    def next_due(self, queues: Sequence[str] | None = None) -> float | None:
        """Seconds until the earliest TO_RUN task comes due (<= 0: due); None: none waits."""
        query = select(func.min(T.run_at)).where(sql.ready(None, queues))
        with self._store().read() as conn:
            earliest = conn.execute(query).scalar()
        return None if earliest is None else (earliest - utcnow()).total_seconds()

    # -- claiming -------------------------------------------------------------------

    #: Whether a claim reads first, without its lock (where taking the lock costs more
    #: than the read: SQLite's write lock, MySQL's GET_LOCK round trips).
    look_before_lock = False

    def _surely_nothing(
        self, max_running: int, queues: Sequence[str] | None, expect_work: bool
    ) -> bool:
        """A look before the lock: most polls of an idle manager find nothing to claim.

        After a full claim (``expect_work``), more is likely: straight to the lock.
        """
        if expect_work or not self.look_before_lock:
            return False
        with self._store().read() as conn:
            return not self._claimable(conn, max_running, queues)

    def claim_batch(
        self,
        limit: int,
        *,
        max_running: int,
        queues: Sequence[str] | None = None,
        hostname: str | None = None,
        started: Started | None = None,
        expect_work: bool = False,
        pid: int | None = None,
    ) -> list[Claimed]:
        """Make up to ``limit`` ready tasks RUNNING, in claim order; returns them.

        Claim order: ``priority`` (higher first), then ``run_at``, then ``id``.
        ``started`` pids are recorded in the same transaction, as
        :meth:`record_pids` would. ``expect_work`` says the caller's last claim
        was full: a store that looks before it locks (SQLite) goes straight in.
        ``pid``: the calling process runs what it claims (recorded in the claim).
        """
        if limit <= 0 or max_running <= 0 or self._surely_nothing(max_running, queues, expect_work):
            self.record_pids(started or {}, hostname)
            return []
        ask = ClaimAsk(limit, max_running, queues, hostname, pid)
        with self._claim_transaction() as conn:
            return self._claim_with_pids(conn, ask, started or {})

    def _claim_with_pids(self, conn: Connection, ask: ClaimAsk, started: Started) -> list[Claimed]:
        """The pids, then the claim, in the claim's transaction (PostgreSQL: one script)."""
        if started:
            self._record_pids_in(conn, started, ask.hostname)
        return self._claim_in(conn, ask)

    def _claim_in(self, conn: Connection, ask: ClaimAsk) -> list[Claimed]:
        wanted = min(ask.limit, ask.max_running - self._count_running(conn))
        if wanted <= 0:
            return []
        now = utcnow()
        claim = sql.claimed_values(now, ask.hostname, ask.pid)
        query = (
            select(taches_table)
            .where(sql.ready(now, ask.queues))
            .order_by(*sql.CLAIM_ORDER)
            .limit(wanted)
        )
        if self.skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        # Conditional on TO_RUN: under the claim lock every row matches, and a
        # mismatch would mean another writer claimed without it (refuse, roll back).
        changed = conn.execute(
            update(taches_table)
            .where(T.id.in_(ids) & (T.status == sql.TO_RUN))
            .values(attempts=T.attempts + 1, **claim)
        ).rowcount
        if changed != len(ids):
            raise RuntimeError(f"claim of {ids} changed {changed} rows: claim lock bypassed")
        return [
            Claimed.of_row({**row._mapping, **claim, "attempts": int(row.attempts or 0) + 1})
            for row in rows
        ]

    # -- pids and beats of children that have not started ---------------------------

    def record_pids(self, started: Started, hostname: str | None) -> None:
        """Record the process of each just-forked task.

        The manager knows a forked child's pid as soon as it exists, so the
        child need not open a connection to say it. Fenced (an attempt already
        ended or superseded is left alone).
        """
        if not started:
            return
        with self._store().write() as conn:
            self._record_pids_in(conn, started, hostname)

    @staticmethod
    def _record_pids_in(conn: Connection, started: Started, hostname: str | None) -> None:
        query = (
            update(taches_table)
            .where(sql.fenced(bindparam("b_id"), bindparam("b_attempt")) & T.pid.is_(None))
            .values(pid=bindparam("b_pid"), hostname=hostname)
        )
        rows = [{"b_id": i, "b_attempt": a, "b_pid": pid} for i, (a, pid) in started.items()]
        conn.execute(query, rows)

    def beat_for_unstarted(self, attempts: Mapping[int, int]) -> int:
        """Beat for claimed tasks whose process has not started yet (``{id: attempt}``).

        Until the task's own process is known, its manager answers for it: a
        slow start (a spawned interpreter on a loaded machine) must not look
        like a dead task. Returns how many rows were touched.
        """
        if not attempts:
            return 0
        mine = or_(*(sql.fenced(i, a) for i, a in attempts.items()))
        with self._store().write() as conn:
            return conn.execute(
                update(taches_table).where(mine & T.pid.is_(None)).values(heartbeat_at=utcnow())
            ).rowcount

    def attempt_states(self, ids: Sequence[int]) -> dict[int, AttemptState]:
        """Where the given tasks stand now (the manager supervising its children)."""
        if not ids:
            return {}
        columns = (T.id, T.status, T.attempts, T.cancel_requested_at, T.cancel_requested_by, T.pid)
        with self._store().read() as conn:
            rows = conn.execute(select(*columns).where(T.id.in_(list(ids)))).all()
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

    # -- the rescue -----------------------------------------------------------------

    def rescue(
        self,
        *,
        heartbeat_timeout: float,
        hostname: str | None,
        is_alive: Callable[[int], bool],
    ) -> list[Rescued]:
        """INTERRUPT the RUNNING tasks whose process is dead; returns what it did.

        The verdict is :func:`flask_taches.lifecycle.rescue_verdict`'s; each one
        is applied in its own transaction, re-checked under the row lock.
        """
        now = utcnow()
        rescued: list[Rescued] = []
        for row in self._rescue_candidates(now, heartbeat_timeout, hostname):
            verdict = lifecycle.rescue_verdict(
                lifecycle.Silent(row.heartbeat_at, row.pid, row.hostname),
                now=now,
                heartbeat_timeout=heartbeat_timeout,
                here=hostname,
                is_alive=is_alive,
            )
            if verdict is None:
                continue
            final = self._store().interrupt_if_dead(row.id, row.attempts, verdict)
            if final is not None:
                rescued.append(Rescued(row.id, int(row.attempts), final, verdict.reason))
        return rescued

    def _rescue_candidates(
        self, now: Any, heartbeat_timeout: float, hostname: str | None
    ) -> Iterator[Any]:
        """RUNNING rows silent too long, or whose pid lives on this host."""
        cutoff = now - timedelta(seconds=heartbeat_timeout)
        stale = T.heartbeat_at.is_(None) | (T.heartbeat_at < cutoff)
        local = (T.hostname == hostname) & T.pid.is_not(None) if hostname else false()
        columns = (T.id, T.attempts, T.pid, T.hostname, T.heartbeat_at)
        with self._store().read() as conn:
            rows = conn.execute(
                select(*columns).where((T.status == sql.RUNNING) & (stale | local))
            ).all()
        yield from rows

    def overdue_here(self, hostname: str, grace: float) -> list[Overdue]:
        """RUNNING tasks of this host still running ``grace`` s past their timeout."""
        columns = (T.id, T.attempts, T.pid, T.started_at, T.timeout)
        with self._store().read() as conn:
            rows = conn.execute(
                select(*columns).where(
                    (T.status == sql.RUNNING)
                    & (T.hostname == hostname)
                    & T.pid.is_not(None)
                    & T.timeout.is_not(None)
                )
            ).all()
        now = utcnow()
        return [
            Overdue(row.id, int(row.attempts), int(row.pid), row.started_at, float(row.timeout))
            for row in rows
            if row.started_at is not None
            and now > row.started_at + timedelta(seconds=float(row.timeout) + grace)
        ]
