"""What users ask of the store: cancel, restart, delete, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from flask_taches import InvalidTransition, Status, TacheNotFound
from flask_taches.clock import utcnow
from tests.store.helpers import HOST, add, claim_one_task, messages, row, set_columns, store

MISSING = 424242


# -- cancel ---------------------------------------------------------------------------------


def test_cancelling_a_running_task_only_raises_its_flag(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    assert store().request_cancel(claimed.id, "alice") is Status.RUNNING
    stored = row(claimed.id)
    assert stored["status"] == Status.RUNNING
    assert stored["cancel_requested_by"] == "alice"
    assert stored["cancel_requested_at"] is not None
    assert stored["ended_at"] is None
    assert store().beat(claimed.id, claimed.attempt).owned, "its process still owns the row"


def test_cancelling_a_task_to_run_cancels_it_at_once(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    assert store().request_cancel(tache_id, "bob") is Status.CANCELLED
    stored = row(tache_id)
    assert stored["status"] == Status.CANCELLED and stored["ended_at"] is not None
    assert stored["logs"][-1]["message"].startswith("cancelled by bob at ")
    assert store().claim_batch(5, max_running=5, hostname=HOST) == []


def test_a_cancel_by_nobody_named_is_anonymous(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    store().request_cancel(tache_id, None)
    assert messages(tache_id)[-1].startswith("cancelled by anonymous at ")


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_cancelling_a_finished_task_changes_nothing(db_ctx: Flask, status: Status) -> None:
    (tache_id,) = add(1)
    set_columns(tache_id, status=status.value)
    before = row(tache_id)
    assert store().request_cancel(tache_id, "alice") is None
    assert row(tache_id) == before


def test_cancelling_no_task_says_so(db_ctx: Flask) -> None:
    with pytest.raises(TacheNotFound, match=f"no task with id {MISSING}"):
        store().request_cancel(MISSING, "alice")


# -- restart --------------------------------------------------------------------------------


def test_a_restart_keeps_the_attempts_and_max_attempts_for_a_fresh_round(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=2)
    store().record_start(claimed.id, claimed.attempt, 4242, HOST)
    set_columns(claimed.id, attempts=2)  # its round is used up: attempt 2 of 2
    store().record_end(claimed.id, 2, Status.FAILED, result=None, logs=[])
    assert row(claimed.id)["status"] == Status.FAILED
    store().restart(claimed.id)
    stored = row(claimed.id)
    assert stored["status"] == Status.TO_RUN
    assert (stored["attempts"], stored["max_attempts"], stored["restart_base"]) == (2, 2, 2)
    assert (stored["pid"], stored["heartbeat_at"], stored["ended_at"]) == (None, None, None)
    assert abs(stored["run_at"] - utcnow()) < timedelta(minutes=1)
    assert messages(claimed.id)[-1] == "restarted: up to 2 attempt(s) from attempt 3"
    (again,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert (again.id, again.attempt) == (claimed.id, 3)
    assert store().record_end(claimed.id, 2, Status.COMPLETED, logs=[]) is None  # fenced
    # Attempt 3 is the first of the new round: it is retried.
    assert store().record_end(claimed.id, 3, Status.FAILED, logs=[]) is Status.TO_RUN


def test_a_restart_keeps_a_future_run_at(db_ctx: Flask) -> None:
    later = utcnow() + timedelta(hours=3)
    (tache_id,) = add(1, run_at=later)
    store().request_cancel(tache_id, "alice")
    store().restart(tache_id)
    stored = row(tache_id)
    assert stored["status"] == Status.TO_RUN
    assert abs(stored["run_at"] - later) < timedelta(milliseconds=1)
    assert store().claim_batch(1, max_running=5, hostname=HOST) == []


def test_a_restart_clears_the_cancel_and_the_result(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=3)
    store().request_cancel(claimed.id, "alice")
    store().end_on_behalf(claimed.id, claimed.attempt, Status.INTERRUPTED, "stopped")
    assert row(claimed.id)["status"] == Status.CANCELLED
    store().restart(claimed.id)
    stored = row(claimed.id)
    assert (stored["cancel_requested_at"], stored["cancel_requested_by"]) == (None, None)
    assert stored["result"] is None
    assert stored["max_attempts"] == 3, "a budget with room left is kept"


@pytest.mark.parametrize("status", [Status.TO_RUN, Status.WAITING, Status.RUNNING])
def test_a_task_not_finished_cannot_be_restarted(db_ctx: Flask, status: Status) -> None:
    (tache_id,) = add(1)
    set_columns(tache_id, status=status.value)
    with pytest.raises(InvalidTransition, match="nothing to restart"):
        store().restart(tache_id)


def test_restarting_no_task_says_so(db_ctx: Flask) -> None:
    with pytest.raises(TacheNotFound, match=f"no task with id {MISSING}"):
        store().restart(MISSING)


# -- delete and purge -----------------------------------------------------------------------


def test_delete_removes_a_task_not_running(db_ctx: Flask) -> None:
    (tache_id,) = add(1)
    store().delete(tache_id)
    assert store().get_row(tache_id) is None


def test_a_running_task_cannot_be_deleted(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    with pytest.raises(InvalidTransition, match="cancel it first"):
        store().delete(claimed.id)
    assert row(claimed.id)["status"] == Status.RUNNING


def test_deleting_no_task_says_so(db_ctx: Flask) -> None:
    with pytest.raises(TacheNotFound, match=f"no task with id {MISSING}"):
        store().delete(MISSING)


def test_purge_batch_deletes_old_finished_tasks_in_batches(db_ctx: Flask) -> None:
    old = add(3)
    recent, pending = add(2)
    long_ago = utcnow() - timedelta(days=3)
    for tache_id in old:
        set_columns(tache_id, status=Status.COMPLETED.value, ended_at=long_ago)
    set_columns(recent, status=Status.COMPLETED.value, ended_at=utcnow())
    cutoff = utcnow() - timedelta(days=1)
    statuses = [Status.COMPLETED.value]
    assert store().purge_batch(statuses, cutoff, limit=2) == old[:2]
    assert store().purge_batch(statuses, cutoff, limit=2) == old[2:]
    assert store().purge_batch(statuses, cutoff, limit=2) == []
    assert store().get_row(recent) is not None and store().get_row(pending) is not None


def test_purge_batch_keeps_the_statuses_not_asked(db_ctx: Flask) -> None:
    failed, completed = add(2)
    long_ago = utcnow() - timedelta(days=3)
    set_columns(failed, status=Status.FAILED.value, ended_at=long_ago)
    set_columns(completed, status=Status.COMPLETED.value, ended_at=long_ago)
    cutoff = utcnow() - timedelta(days=1)
    assert store().purge_batch([Status.FAILED.value], cutoff, limit=10) == [failed]
    assert store().get_row(completed) is not None


def test_get_row_reads_one_row(db_ctx: Flask) -> None:
    (tache_id,) = add(1, queue="mail")
    found = store().get_row(tache_id)
    assert found is not None and (found["id"], found["queue"]) == (tache_id, "mail")
    assert store().get_row(MISSING) is None
