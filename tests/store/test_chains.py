"""Chains: the next task is released when one completes, or the rest is cancelled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from tests.app import taches
from tests.store.helpers import HOST, NOOP, chain, messages, row, set_columns, store


def test_a_completed_task_releases_the_next_one_now(db_ctx: Flask) -> None:
    first, second, third = chain(NOOP, NOOP, NOOP)
    set_columns(second, run_at=utcnow() - timedelta(days=1))
    (claimed,) = store().claim_batch(5, max_running=5, hostname=HOST)
    assert claimed.id == first
    before = utcnow()
    assert store().record_end(first, claimed.attempt, Status.COMPLETED, logs=[]) is (
        Status.COMPLETED
    )
    assert row(second)["status"] == Status.TO_RUN
    assert row(second)["run_at"] >= before - timedelta(seconds=1), "an earlier run_at is now"
    assert row(third)["status"] == Status.WAITING, "one step at a time"
    (following,) = store().claim_batch(5, max_running=5, hostname=HOST)
    assert following.id == second


def test_a_chained_task_keeps_its_own_later_run_at(db_ctx: Flask) -> None:
    later = utcnow() + timedelta(days=1)
    first, second = chain(NOOP, Tache(method=NOOP, run_at=later))
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert store().record_end(first, claimed.attempt, Status.COMPLETED, logs=[]) is Status.COMPLETED
    assert row(second)["status"] == Status.TO_RUN
    assert abs(row(second)["run_at"] - later) < timedelta(seconds=1)
    assert store().claim_batch(1, max_running=5, hostname=HOST) == [], "not before its run_at"


def test_a_chain_released_by_the_slow_path_keeps_a_later_run_at(db_ctx: Flask) -> None:
    """Without logs the end takes the locked path: the same rule holds there."""
    later = utcnow() + timedelta(days=1)
    first, second = chain(NOOP, Tache(method=NOOP, run_at=later))
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert store().record_end(first, claimed.attempt, Status.COMPLETED) is Status.COMPLETED
    assert abs(row(second)["run_at"] - later) < timedelta(seconds=1)


@pytest.mark.parametrize("ended", [Status.FAILED, Status.INTERRUPTED])
def test_a_final_failure_cancels_the_rest_of_the_chain(db_ctx: Flask, ended: Status) -> None:
    first, second, third = chain(NOOP, NOOP, NOOP)
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    if ended is Status.FAILED:
        assert store().record_end(first, claimed.attempt, ended, logs=[]) is ended
    else:
        assert store().end_on_behalf(first, claimed.attempt, ended, "process died") is ended
    reason = f"cancelled: task {first} before it in the chain ended {ended.value}"
    for later in (second, third):
        stored = row(later)
        assert stored["status"] == Status.CANCELLED
        assert stored["ended_at"] is not None
        assert stored["logs"][-1]["message"] == reason
        assert stored["logs"][-1]["level"] == "warning"
    assert store().claim_batch(5, max_running=5, hostname=HOST) == []


def test_a_retry_leaves_the_chain_waiting(db_ctx: Flask) -> None:
    first, second = chain(Tache(method=NOOP, max_attempts=2), NOOP)
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert store().record_end(first, claimed.attempt, Status.FAILED, logs=[]) is Status.TO_RUN
    assert row(second)["status"] == Status.WAITING


def test_cancelling_a_waiting_head_cancels_the_whole_chain(db_ctx: Flask) -> None:
    first, second = chain(NOOP, NOOP)
    assert store().request_cancel(first, "alice") is Status.CANCELLED
    assert row(second)["status"] == Status.CANCELLED
    assert messages(second)[-1] == (
        f"cancelled: task {first} before it in the chain ended CANCELLED"
    )


def test_a_chain_stops_at_a_task_no_longer_waiting(db_ctx: Flask) -> None:
    first, second, third = chain(NOOP, NOOP, NOOP)
    # Edited by hand: no longer waiting on the first (and not due yet).
    set_columns(second, status=Status.TO_RUN.value, run_at=utcnow() + timedelta(days=1))
    (claimed,) = store().claim_batch(5, max_running=5, hostname=HOST)
    assert claimed.id == first
    store().end_on_behalf(first, claimed.attempt, Status.FAILED, "boom")
    assert row(second)["status"] == Status.TO_RUN, "only WAITING tasks are cancelled"
    assert row(third)["status"] == Status.WAITING


def test_deleting_a_task_of_a_chain_cancels_the_tasks_waiting_on_it(db_ctx: Flask) -> None:
    first, second, third = chain(NOOP, NOOP, NOOP)
    taches.delete(second)
    assert row(third)["status"] == Status.CANCELLED
    assert f"task {second} before it in the chain was deleted" in messages(third)[-1]
    (claimed,) = store().claim_batch(5, max_running=5, hostname=HOST)
    assert claimed.id == first
    assert store().record_end(first, claimed.attempt, Status.COMPLETED, logs=[]) is Status.COMPLETED
    head, tail = chain(NOOP, NOOP)
    taches.delete(head)
    assert row(tail)["status"] == Status.CANCELLED


def test_purging_a_finished_task_cancels_a_task_still_waiting_on_it(db_ctx: Flask) -> None:
    first, second = chain(NOOP, NOOP)
    # A finished task whose successor still waits (e.g. edited by hand): purge must not strand it.
    set_columns(first, status=Status.COMPLETED.value, ended_at=utcnow() - timedelta(days=2))
    assert taches.purge(timedelta(days=1)) == 1
    assert row(second)["status"] == Status.CANCELLED
