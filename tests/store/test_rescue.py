"""The rescue: RUNNING tasks whose process is dead are INTERRUPTED (and retried)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from flask import Flask

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.processes import pid_alive
from tests.store.helpers import HOST, add, messages, row, set_columns, store


def test_rescue_interrupts_a_silent_task_and_retries_it(db_ctx: Flask) -> None:
    (tache_id,) = add(1, max_attempts=2)
    (claimed,) = store().claim_batch(1, max_running=5, hostname="elsewhere")
    set_columns(tache_id, heartbeat_at=utcnow() - timedelta(seconds=60), pid=os.getpid())
    rescued = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True)
    assert [(r.id, r.attempt, r.status) for r in rescued] == [(tache_id, 1, Status.TO_RUN)]
    stored = row(tache_id)
    assert stored["status"] == Status.TO_RUN
    assert stored["run_at"] > utcnow()
    found = messages(tache_id)
    assert any("no heartbeat" in m for m in found)
    assert any("retrying" in m for m in found)
    # The retry is a new attempt; the old one can no longer write.
    assert store().record_end(tache_id, claimed.attempt, Status.COMPLETED) is None


def test_rescue_says_why_in_the_log_and_its_report(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    store().claim_batch(1, max_running=5, hostname="elsewhere")
    set_columns(tache_id, heartbeat_at=utcnow() - timedelta(seconds=60))
    (rescued,) = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True)
    assert (rescued.status, rescued.attempt) == (Status.INTERRUPTED, 1)
    assert rescued.reason.startswith("no heartbeat for ") and "(limit 30s)" in rescued.reason
    stored = row(tache_id)
    assert stored["status"] == Status.INTERRUPTED
    assert stored["ended_at"] is not None and stored["heartbeat_at"] is None
    assert stored["logs"][-1]["message"] == rescued.reason
    assert stored["logs"][-1]["level"] == "error"


def test_rescue_of_a_task_that_never_beat(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    store().claim_batch(1, max_running=5, hostname="elsewhere")
    set_columns(tache_id, heartbeat_at=None)
    (rescued,) = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True)
    assert rescued.reason == "RUNNING without any heartbeat"


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


def test_rescue_leaves_beating_and_finished_tasks_alone(db_ctx: Flask) -> None:
    beating, done = add(2)
    store().claim_batch(2, max_running=5, hostname="elsewhere")
    set_columns(done, status=Status.COMPLETED.value, heartbeat_at=None)
    assert store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: False) == []
    assert row(beating)["status"] == Status.RUNNING
    assert row(done)["status"] == Status.COMPLETED


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


def test_a_dead_pid_is_rescued_even_if_it_beat_meanwhile(
    db_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gone process is dead whatever its last heartbeat says (nothing beats for it)."""
    (tache_id,) = add(1)
    store().claim_batch(1, max_running=5, hostname=HOST)
    set_columns(tache_id, pid=999_999)
    the_store = store()
    interrupt_if = the_store.interrupt_if_dead

    def beat_first(*args: object) -> Status | None:
        set_columns(tache_id, heartbeat_at=utcnow())
        return interrupt_if(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(the_store, "interrupt_if_dead", beat_first)
    rescued = the_store.rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: False)
    assert [r.id for r in rescued] == [tache_id]
    assert row(tache_id)["status"] == Status.INTERRUPTED
