"""Claiming, supervision, rescue and wake-ups in the store, on every database.

These talk to the real databases through the store directly (no manager
process); the manager's own tests drive real ``flask taches start`` processes.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event, select, text, update

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from flask_taches.processes import pid_alive
from flask_taches.store import Store
from tests.app import db, taches

NOOP = "tests.manager_tasks:noop"
HOST = "claim-test-host"


def store() -> Store:
    return taches.store()


def row(tache_id: int) -> dict:
    with store().read() as conn:
        found = (
            conn.execute(select(taches_table).where(taches_table.c.id == tache_id)).mappings().one()
        )
    return dict(found)


def set_columns(tache_id: int, **values: object) -> None:
    with store().write() as conn:
        conn.execute(update(taches_table).where(taches_table.c.id == tache_id).values(**values))


def add(n: int = 1, **options: object) -> list[int]:
    ids = [taches.add(NOOP, **options) for _ in range(n)]
    db.session.remove()
    return ids


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


def test_claim_respects_the_global_max(db_ctx: Flask) -> None:
    add(6)
    assert len(store().claim_batch(2, max_running=3, hostname=HOST)) == 2
    assert len(store().claim_batch(5, max_running=3, hostname=HOST)) == 1
    assert store().claim_batch(5, max_running=3, hostname=HOST) == []
    assert store().count_running() == 3


def test_claim_serves_only_the_queues_asked(db_ctx: Flask) -> None:
    (mail,) = add(1, queue="mail")
    (other,) = add(1, queue="reports")
    claimed = store().claim_batch(5, max_running=5, queues=["mail"], hostname=HOST)
    assert [c.id for c in claimed] == [mail]
    assert row(other)["status"] == Status.TO_RUN


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


def test_attempts_state_and_fenced_end(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    state = store().attempt_states([tache_id])[tache_id]
    assert (state.status, state.attempts, state.cancel_requested_at) == (Status.RUNNING, 1, None)
    taches.cancel(tache_id, who="alice")
    state = store().attempt_states([tache_id])[tache_id]
    assert state.cancel_requested_by == "alice" and state.cancel_requested_at is not None
    assert store().end_on_behalf(tache_id, 2, Status.INTERRUPTED, "wrong attempt") is None
    final = store().end_on_behalf(
        tache_id, claimed.attempt, Status.INTERRUPTED, "killed by signal 9"
    )
    assert final is Status.CANCELLED, "the cancel asked before it died stands"
    stored = row(tache_id)
    assert stored["status"] == Status.CANCELLED
    assert stored["logs"][-2]["message"] == "killed by signal 9"
    assert stored["logs"][-1]["message"].startswith("cancelled by alice")
    assert store().end_on_behalf(tache_id, claimed.attempt, Status.FAILED, "again") is None


def test_rescue_interrupts_a_silent_task_and_retries_it(db_ctx: Flask) -> None:
    (tache_id,) = add(1, max_attempts=2)
    (claimed,) = store().claim_batch(1, max_running=5, hostname="elsewhere")
    set_columns(tache_id, heartbeat_at=utcnow() - timedelta(seconds=60), pid=os.getpid())
    rescued = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True)
    assert [(r.id, r.attempt, r.status) for r in rescued] == [(tache_id, 1, Status.TO_RUN)]
    stored = row(tache_id)
    assert stored["status"] == Status.TO_RUN
    assert stored["run_at"] > utcnow()
    messages = [entry["message"] for entry in stored["logs"]]
    assert any("no heartbeat" in m for m in messages)
    assert any("retrying" in m for m in messages)
    # The retry is a new attempt; the old one can no longer write.
    assert store().record_end(tache_id, claimed.attempt, Status.COMPLETED) is None


def test_rescue_finds_a_dead_local_process_at_once(db_ctx: Flask) -> None:
    dead, alive, remote = add(3)
    store().claim_batch(3, max_running=5, hostname=HOST)
    set_columns(dead, pid=999_999)
    set_columns(alive, pid=os.getpid())
    set_columns(remote, pid=999_999, hostname="another-host")
    rescued = store().rescue(
        heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: pid == os.getpid()
    )
    assert [(r.id, r.status) for r in rescued] == [(dead, Status.INTERRUPTED)]
    assert "999999" in rescued[0].reason
    assert row(alive)["status"] == Status.RUNNING
    assert row(remote)["status"] == Status.RUNNING


def test_rescue_spares_a_silent_task_whose_process_lives_here(db_ctx: Flask) -> None:
    """A long C call holding the GIL misses beats: its live pid says it is working."""
    working, dead, remote = add(3)
    store().claim_batch(3, max_running=5, hostname=HOST)
    stale = utcnow() - timedelta(seconds=60)
    set_columns(working, heartbeat_at=stale, pid=os.getpid())
    set_columns(dead, heartbeat_at=stale, pid=999_999)
    set_columns(remote, heartbeat_at=stale, pid=os.getpid(), hostname="another-host")
    rescued = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=pid_alive)
    assert sorted(r.id for r in rescued) == sorted([dead, remote])
    assert row(working)["status"] == Status.RUNNING


def test_overdue_here_lists_this_hosts_tasks_past_timeout_and_grace(db_ctx: Flask) -> None:
    overdue, in_grace, no_limit, remote = add(4, timeout=10)
    store().claim_batch(4, max_running=5, hostname=HOST)
    now = utcnow()
    set_columns(overdue, pid=4242, started_at=now - timedelta(seconds=20))
    set_columns(in_grace, pid=4243, started_at=now - timedelta(seconds=12))
    set_columns(no_limit, pid=4244, started_at=now - timedelta(hours=1), timeout=None)
    set_columns(remote, pid=4245, started_at=now - timedelta(hours=1), hostname="another-host")
    found = store().overdue_here(HOST, grace=5)
    assert [(o.id, o.pid, o.timeout) for o in found] == [(overdue, 4242, 10.0)]


def test_rescue_leaves_a_task_that_beat_meanwhile(
    db_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tache_id,) = add(1)
    store().claim_batch(1, max_running=5, hostname="elsewhere")
    set_columns(tache_id, heartbeat_at=utcnow() - timedelta(seconds=60))
    the_store = store()
    interrupt_if = the_store.interrupt_if_dead

    def beat_first(*args: object) -> Status | None:
        # A heartbeat lands between rescue's read and its locked write.
        set_columns(tache_id, heartbeat_at=utcnow())
        return interrupt_if(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(the_store, "interrupt_if_dead", beat_first)
    assert the_store.rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True) == []
    assert row(tache_id)["status"] == Status.RUNNING


def test_listener_wakes_on_a_new_task(db_ctx: Flask, dialect: str) -> None:
    listener = store().wake_source(max_running=5)
    try:
        assert listener.wait(0.05) is False
        add(1)
        woken = listener.wait(5.0)
    finally:
        listener.close()
    # MySQL/MariaDB have no notification: their managers poll every TACHES_POLL.
    assert woken is (dialect != "mysql")


def test_listener_stops_waiting_when_the_wake_fd_is_readable(db_ctx: Flask) -> None:
    listener = store().wake_source()
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"x")
        assert listener.wait(30.0, read_fd) is False
    finally:
        listener.close()
        os.close(read_fd)
        os.close(write_fd)


def test_stats_counts_and_throughput(db_ctx: Flask) -> None:
    add(2, queue="mail")
    add(1, run_at=utcnow() + timedelta(hours=1))
    (done,) = add(1)
    set_columns(done, run_at=utcnow() - timedelta(minutes=1))
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    store().record_end(claimed.id, claimed.attempt, Status.COMPLETED)
    stats = store().stats()
    assert stats["by_status"][Status.TO_RUN] == 3
    assert stats["by_status"][Status.COMPLETED] == 1
    assert stats["by_queue"]["mail"] == {Status.TO_RUN.value: 2}
    assert stats["oldest_to_run_age"] is not None and stats["oldest_to_run_age"] >= 0
    one_minute = stats["throughput"][0]
    assert (one_minute["minutes"], one_minute["ended"]) == (1, 1)
    assert one_minute["by_status"] == {Status.COMPLETED.value: 1}


@pytest.mark.parametrize("status", [Status.WAITING, Status.COMPLETED, Status.CANCELLED])
def test_only_to_run_is_claimed(db_ctx: Flask, status: Status) -> None:
    (tache_id,) = add(1)
    set_columns(tache_id, status=status.value)
    assert store().claim_batch(5, max_running=5, hostname=HOST) == []


def test_a_deleted_task_id_is_never_given_again(db_ctx: Flask) -> None:
    """Fencing is (id, attempts, RUNNING): a reused id would let a late process
    of the deleted task write into the new one (SQLite reuses the top rowid
    unless the table is AUTOINCREMENT)."""
    (old,) = add(1)
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    store().end_on_behalf(old, claimed.attempt, Status.INTERRUPTED, "declared dead")
    taches.delete(old)
    (new,) = add(1)
    assert new > old
    (again,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert again.attempt == claimed.attempt  # the late process's fence, were ids reused
    assert not store().record_live(old, claimed.attempt, logs=[])
    assert store().record_end(old, claimed.attempt, Status.COMPLETED, logs=[]) is None
    assert row(new)["status"] == Status.RUNNING


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


def messages(tache_id: int) -> list[str]:
    return [entry["message"] for entry in row(tache_id)["logs"]]


@pytest.mark.parametrize("ended", [Status.INTERRUPTED, Status.FAILED])
def test_a_cancel_outlives_a_process_that_ends_before_acting_on_it(
    db_ctx: Flask, ended: Status
) -> None:
    """The process died (or failed) with the cancel flag raised: no retry, CANCELLED."""
    first, second = taches.chain(Tache(method=NOOP, max_attempts=3), NOOP)
    db.session.remove()
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert taches.cancel(first, who="alice") is Status.RUNNING
    db.session.remove()
    if ended is Status.INTERRUPTED:
        final = store().end_on_behalf(first, claimed.attempt, ended, "process died")
    else:
        final = store().record_end(first, claimed.attempt, ended, logs=[])
    assert final is Status.CANCELLED
    assert row(first)["status"] == Status.CANCELLED
    assert "cancelled by alice" in messages(first)[-1]
    assert row(second)["status"] == Status.CANCELLED, "the rest of the chain too"
    assert store().claim_batch(5, max_running=5, hostname=HOST) == []


def test_a_chained_task_keeps_its_own_later_run_at(db_ctx: Flask) -> None:
    later = utcnow() + timedelta(days=1)
    first, second = taches.chain(NOOP, Tache(method=NOOP, run_at=later))
    db.session.remove()
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert store().record_end(first, claimed.attempt, Status.COMPLETED, logs=[]) is Status.COMPLETED
    assert row(second)["status"] == Status.TO_RUN
    assert abs(row(second)["run_at"] - later) < timedelta(seconds=1)
    assert store().claim_batch(1, max_running=5, hostname=HOST) == [], "not before its run_at"


def test_deleting_a_task_of_a_chain_cancels_the_tasks_waiting_on_it(db_ctx: Flask) -> None:
    first, second, third = taches.chain(NOOP, NOOP, NOOP)
    taches.delete(second)
    assert row(third)["status"] == Status.CANCELLED
    assert f"task {second} before it in the chain was deleted" in messages(third)[-1]
    (claimed,) = store().claim_batch(5, max_running=5, hostname=HOST)
    assert claimed.id == first
    assert store().record_end(first, claimed.attempt, Status.COMPLETED, logs=[]) is Status.COMPLETED
    head, tail = taches.chain(NOOP, NOOP)
    taches.delete(head)
    assert row(tail)["status"] == Status.CANCELLED


def test_purging_a_finished_task_cancels_a_task_still_waiting_on_it(db_ctx: Flask) -> None:
    first, second = taches.chain(NOOP, NOOP)
    # A finished task whose successor still waits (e.g. edited by hand): purge must not strand it.
    set_columns(first, status=Status.COMPLETED.value, ended_at=utcnow() - timedelta(days=2))
    assert taches.purge(timedelta(days=1)) == 1
    assert row(second)["status"] == Status.CANCELLED


@pytest.mark.dialects("mysql")
def test_mysql_claims_hold_a_server_wide_lock_whose_name_mysql_8_accepts(db_ctx: Flask) -> None:
    name = "CONCAT('taches_claim.', SHA1(DATABASE()))"
    with db.engine.connect() as other:
        assert other.execute(text(f"SELECT LENGTH({name})")).scalar() <= 64
        with store()._claim_transaction():
            holder = other.execute(text(f"SELECT IS_USED_LOCK({name})")).scalar()
            assert holder is not None, "another manager's claim would not wait"
        assert other.execute(text(f"SELECT IS_USED_LOCK({name})")).scalar() is None
