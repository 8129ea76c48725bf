"""Claiming: which tasks, in what order, how many, and each one once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from flask_taches import InvalidTransition, Status, TacheNotFound
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from flask_taches.store.postgresql import CLAIM_LOCK_KEY
from tests.app import db, taches
from tests.polling import wait_for
from tests.store.helpers import HOST, NOOP, add, row, set_columns, store


def test_claim_order_is_priority_then_run_at_then_id(db_ctx: Flask) -> None:
    now = utcnow()
    late = add(1, run_at=now - timedelta(seconds=10))[0]
    early = add(1, run_at=now - timedelta(seconds=20))[0]
    urgent = add(1, priority=5)[0]
    same_time = add(2, run_at=now - timedelta(seconds=30))
    claimed = store().claim_batch(10, max_running=10, hostname=HOST)
    assert [c.id for c in claimed] == [urgent, *same_time, early, late]


def test_future_and_waiting_tasks_are_not_claimed(db_ctx: Flask) -> None:
    future = add(1, run_at=utcnow() + timedelta(hours=1))[0]
    first, second = taches.chain(NOOP, NOOP)
    db.session.remove()
    claimed = store().claim_batch(10, max_running=10, hostname=HOST)
    assert [c.id for c in claimed] == [first]
    assert row(future)["status"] == Status.TO_RUN
    assert row(second)["status"] == Status.WAITING


def test_claim_marks_the_row_and_counts_the_attempt(db_ctx: Flask) -> None:
    (tache_id,) = add(1, timeout=7.5, queue="mail")
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert (claimed.id, claimed.attempt, claimed.method) == (tache_id, 1, NOOP)
    assert (claimed.timeout, claimed.queue) == (7.5, "mail")
    stored = row(tache_id)
    assert stored["status"] == Status.RUNNING
    assert stored["attempts"] == 1
    assert stored["hostname"] == HOST
    assert stored["pid"] is None
    assert stored["heartbeat_at"] is not None and stored["started_at"] is not None


def test_a_claim_hands_the_row_as_stored(db_ctx: Flask) -> None:
    """A forked child runs from ``Claimed.row``: it must be the row the claim wrote."""
    (tache_id,) = add(1, queue="mail")
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert claimed.row is not None
    stored = row(tache_id)
    for column in ("id", "method", "status", "attempts", "hostname", "pid", "queue"):
        assert claimed.row[column] == stored[column], column


def test_claim_respects_the_global_max(db_ctx: Flask) -> None:
    add(6)
    assert len(store().claim_batch(2, max_running=3, hostname=HOST)) == 2
    assert len(store().claim_batch(5, max_running=3, hostname=HOST)) == 1
    assert store().claim_batch(5, max_running=3, hostname=HOST) == []
    assert store().count_running() == 3


def test_nothing_is_claimed_for_no_room(db_ctx: Flask) -> None:
    add(2)
    assert store().claim_batch(0, max_running=5, hostname=HOST) == []
    assert store().claim_batch(5, max_running=0, hostname=HOST) == []
    assert store().count_running() == 0


def test_claim_serves_only_the_queues_asked(db_ctx: Flask) -> None:
    (mail,) = add(1, queue="mail")
    (other,) = add(1, queue="reports")
    claimed = store().claim_batch(5, max_running=5, queues=["mail"], hostname=HOST)
    assert [c.id for c in claimed] == [mail]
    assert row(other)["status"] == Status.TO_RUN


def test_a_claim_expecting_work_finds_the_same_tasks(db_ctx: Flask) -> None:
    ids = add(3)
    claimed = store().claim_batch(5, max_running=5, hostname=HOST, expect_work=True)
    assert [c.id for c in claimed] == ids
    assert store().claim_batch(5, max_running=5, hostname=HOST, expect_work=True) == []


@pytest.mark.parametrize("status", [Status.WAITING, Status.COMPLETED, Status.CANCELLED])
def test_only_to_run_is_claimed(db_ctx: Flask, status: Status) -> None:
    (tache_id,) = add(1)
    set_columns(tache_id, status=status.value)
    assert store().claim_batch(5, max_running=5, hostname=HOST) == []


def test_concurrent_claims_take_each_task_once(db_ctx: Flask) -> None:
    ids = set(add(60))
    the_store = store()
    taken: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def claimer() -> None:
        try:
            start.wait()
            while True:
                got = the_store.claim_batch(3, max_running=1000, hostname=HOST)
                if not got:
                    return
                taken.extend(c.id for c in got)
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    duplicates = [i for i, n in Counter(taken).items() if n > 1]
    assert duplicates == []
    assert set(taken) == ids


def test_concurrent_claims_never_exceed_the_max(db_ctx: Flask) -> None:
    add(40)
    the_store = store()
    max_running = 4
    seen: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def claimer() -> None:
        try:
            start.wait()
            for _ in range(20):
                for claimed in the_store.claim_batch(2, max_running=max_running, hostname=HOST):
                    seen.append(the_store.count_running())
                    the_store.record_end(claimed.id, claimed.attempt, Status.COMPLETED)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen, "no task was claimed"
    assert max(seen) <= max_running


# -- one given task (``run ID``) ------------------------------------------------------------


def test_claim_one_makes_a_to_run_task_running(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    assert store().claim_one(tache_id, hostname=HOST) == 1
    stored = row(tache_id)
    assert (stored["status"], stored["attempts"], stored["hostname"]) == (
        Status.RUNNING,
        1,
        HOST,
    )
    assert stored["heartbeat_at"] is not None and stored["started_at"] is not None


def test_claim_one_refuses_a_running_task_even_forced(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    store().claim_one(tache_id)
    for force in (False, True):
        with pytest.raises(InvalidTransition, match="already RUNNING"):
            store().claim_one(tache_id, force=force)


def test_claim_one_runs_a_finished_task_only_when_forced(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    attempt = store().claim_one(tache_id)
    store().record_end(tache_id, attempt, Status.FAILED, logs=[])
    with pytest.raises(InvalidTransition, match="not TO_RUN"):
        store().claim_one(tache_id)
    assert store().claim_one(tache_id, force=True) == attempt + 1
    assert row(tache_id)["status"] == Status.RUNNING


def test_claim_one_of_no_task_says_so(db_ctx: Flask) -> None:
    with pytest.raises(TacheNotFound, match="no task with id 424242"):
        store().claim_one(424242)


# -- how the claim reads and locks ------------------------------------------------------------


def test_the_claim_reads_its_index_in_order_without_sorting(app_ctx: Flask) -> None:
    """With a backlog, sorting every ready row on each claim is the cost to avoid."""
    now = utcnow()
    rows = [
        {
            "method": NOOP,
            "parametres": {},
            "status": Status.TO_RUN.value,
            "logs": [],
            "created_at": now,
            "run_at": now - timedelta(seconds=i),
            "priority": i % 3,
            "queue": "default" if i % 2 else "mail",
            "attempts": 0,
            "max_attempts": 1,
        }
        for i in range(2000)
    ]
    with store().write() as conn:
        conn.execute(taches_table.insert(), rows)
        conn.exec_driver_sql("ANALYZE")
    seen: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, sql: str, params: object, *args: object) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "ORDER BY" in sql.upper():
            seen.append((sql, params))

    engine = store().engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert len(store().claim_batch(3, max_running=10, hostname=HOST)) == 3
        assert len(store().claim_batch(3, max_running=10, queues=["mail"], hostname=HOST)) == 3
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 2
    with store().read() as conn:
        for sql, params in seen:
            plan = " | ".join(
                str(step[-1]) for step in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            )
            assert "ix_taches_ready" in plan, plan
            assert "TEMP B-TREE" not in plan, plan


@pytest.mark.dialects("mysql")
def test_mysql_claims_hold_a_server_wide_lock_whose_name_mysql_8_accepts(db_ctx: Flask) -> None:
    name = "CONCAT('taches_claim.', SHA1(DATABASE()))"
    (tache_id,) = add(1)
    holders: list[object] = []
    with db.engine.connect() as other:
        assert other.execute(text(f"SELECT LENGTH({name})")).scalar() <= 64

        def while_claiming(conn: object, cursor: object, sql: str, *args: object) -> None:
            # The claim's UPDATE runs inside its transaction: the lock must be held then.
            if sql.lstrip().upper().startswith("UPDATE"):
                holders.append(other.execute(text(f"SELECT IS_USED_LOCK({name})")).scalar())

        engine = store().engine
        event.listen(engine, "before_cursor_execute", while_claiming)
        try:
            (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
        finally:
            event.remove(engine, "before_cursor_execute", while_claiming)
        assert claimed.id == tache_id
        assert holders and holders[0] is not None, "another manager's claim would not wait"
        assert other.execute(text(f"SELECT IS_USED_LOCK({name})")).scalar() is None


#: This database's advisory locks (the server is shared with other databases).
ADVISORY = (
    "SELECT count(*) FROM pg_locks JOIN pg_database d ON d.oid = database"
    " WHERE locktype = 'advisory' AND d.datname = current_database() AND granted = :granted"
)


@pytest.mark.dialects("postgresql")
def test_a_claim_counts_what_the_lock_holder_claimed(db_ctx: Flask) -> None:
    """The RUNNING count is read once the lock is granted: a count read before it
    would miss the holder's claim and go over the max."""
    first, *_ = add(3)
    the_store = store()
    engine = the_store.engine
    # Its own engine: another manager, holding the claim lock mid-claim.
    holder = create_engine(engine.url, poolclass=NullPool)
    got: list[int] = []
    with holder.connect() as other, holder.connect() as lookout:
        other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
        other.execute(
            taches_table.update().where(taches_table.c.id == first).values(status="RUNNING")
        )
        claiming = threading.Thread(
            target=lambda: got.extend(
                c.id for c in the_store.claim_batch(5, max_running=2, hostname=HOST)
            )
        )
        claiming.start()

        def waiting() -> bool:
            found = lookout.execute(text(ADVISORY), {"granted": False}).scalar()
            lookout.rollback()
            return bool(found)

        wait_for(waiting, "the claim waiting for the lock", 30)
        other.commit()
        claiming.join(30)
    holder.dispose()
    assert len(got) == 1 and first not in got, "the max of 2 leaves one slot to this claim"


def test_a_claim_keeps_host_and_queue_names_as_written(db_ctx: Flask) -> None:
    """PostgreSQL's claim renders them into its script: quotes and all stay text."""
    host, queue = "web-1'; DROP TABLE taches; --\\%s", "it's 100%"
    first, second = add(2, queue=queue)
    (claimed,) = store().claim_batch(1, max_running=5, queues=[queue], hostname=host)
    assert claimed.id == first and claimed.row is not None and claimed.row["hostname"] == host
    started = {first: (1, 4242)}
    (again,) = store().claim_batch(1, max_running=5, queues=[queue], hostname=host, started=started)
    assert again.id == second
    assert (row(first)["pid"], row(first)["hostname"], row(second)["hostname"]) == (
        4242,
        host,
        host,
    )
