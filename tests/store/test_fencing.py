"""Fencing: every write of an attempt's process needs (id, attempt, RUNNING).

A process declared dead (rescued, ended on its behalf, superseded by a retry)
that comes back late must change nothing.
"""

from __future__ import annotations

import os
from datetime import timedelta

from flask import Flask

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.store import Beat
from tests.app import taches
from tests.store.helpers import HOST, add, claim_one_task, row, set_columns, store


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


def test_the_running_attempt_writes_and_beats(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    set_columns(claimed.id, heartbeat_at=utcnow() - timedelta(minutes=5))
    before = row(claimed.id)["heartbeat_at"]
    assert store().record_start(claimed.id, claimed.attempt, 4242, "runner-host")
    logs = [{"level": "info", "message": "hello", "details": None, "at": utcnow().isoformat()}]
    progress = {"current": 1, "total": 2}
    assert store().record_live(claimed.id, claimed.attempt, logs=logs, progress=progress)
    stored = row(claimed.id)
    assert (stored["pid"], stored["hostname"]) == (4242, "runner-host")
    assert stored["logs"] == logs and stored["progress"] == progress
    assert stored["heartbeat_at"] > before, "each write of the attempt beats too"


def test_record_live_without_values_only_beats(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    logs = [{"level": "info", "message": "kept", "details": None, "at": utcnow().isoformat()}]
    assert store().record_live(claimed.id, claimed.attempt, logs=logs)
    assert store().record_live(claimed.id, claimed.attempt)
    assert row(claimed.id)["logs"] == logs


def test_after_a_rescue_the_old_attempt_can_write_nothing(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=1)
    set_columns(claimed.id, heartbeat_at=utcnow() - timedelta(seconds=60))
    (rescued,) = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True)
    assert (rescued.id, rescued.status) == (claimed.id, Status.INTERRUPTED)
    before = row(claimed.id)
    attempt = claimed.attempt
    assert store().record_start(claimed.id, attempt, os.getpid(), HOST) is False
    assert store().record_live(claimed.id, attempt, logs=[], progress={"current": 9}) is False
    assert store().beat(claimed.id, attempt) == Beat(owned=False)
    assert store().record_end(claimed.id, attempt, Status.COMPLETED, result=1, logs=[]) is None
    assert store().record_end(claimed.id, attempt, Status.FAILED, logs=[]) is None
    assert store().end_on_behalf(claimed.id, attempt, Status.INTERRUPTED, "late") is None
    store().record_pids({claimed.id: (attempt, 4242)}, HOST)
    assert store().beat_for_unstarted({claimed.id: attempt}) == 0
    assert row(claimed.id) == before


def test_after_a_retry_only_the_new_attempt_writes(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=2)
    set_columns(claimed.id, heartbeat_at=utcnow() - timedelta(seconds=60))
    (rescued,) = store().rescue(heartbeat_timeout=30, hostname=HOST, is_alive=lambda pid: True)
    assert rescued.status is Status.TO_RUN
    set_columns(claimed.id, run_at=utcnow() - timedelta(seconds=1))
    (retry,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert (retry.id, retry.attempt) == (claimed.id, claimed.attempt + 1)
    assert store().record_live(claimed.id, claimed.attempt, logs=[]) is False
    assert store().beat(claimed.id, claimed.attempt).owned is False
    assert store().record_end(claimed.id, claimed.attempt, Status.COMPLETED, logs=[]) is None
    assert row(claimed.id)["status"] == Status.RUNNING
    assert store().beat(retry.id, retry.attempt).owned is True
    assert store().record_end(retry.id, retry.attempt, Status.COMPLETED, logs=[]) is (
        Status.COMPLETED
    )


def test_an_attempt_ended_on_its_behalf_is_fenced_out(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    final = store().end_on_behalf(claimed.id, claimed.attempt, Status.FAILED, "timed out")
    assert final is Status.FAILED
    assert row(claimed.id)["logs"][-1]["message"] == "timed out"
    assert row(claimed.id)["logs"][-1]["level"] == "error"
    assert store().record_live(claimed.id, claimed.attempt, logs=[]) is False
    assert store().record_end(claimed.id, claimed.attempt, Status.COMPLETED, logs=[]) is None
    assert row(claimed.id)["status"] == Status.FAILED
