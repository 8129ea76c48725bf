"""Retries: a failed attempt with attempts left goes back to TO_RUN, backed off; a cancel wins."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from flask import Flask

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from flask_taches.lifecycle import JITTER
from tests.app import taches
from tests.store.helpers import (
    HOST,
    NOOP,
    add,
    chain,
    claim_one_task,
    messages,
    row,
    set_columns,
    store,
)

LOW, HIGH = JITTER


def test_the_retry_base_is_the_apps_setting(db_ctx: Flask) -> None:
    """The retry delay comes from the app's TACHES_RETRY_DELAY (10 s by default)."""
    assert store().retry_base == 10.0


@pytest.mark.parametrize("ended", [Status.INTERRUPTED, Status.FAILED])
def test_a_cancel_outlives_a_process_that_ends_before_acting_on_it(
    db_ctx: Flask, ended: Status
) -> None:
    """The process died (or failed) with the cancel flag raised: no retry, CANCELLED."""
    first, second = chain(Tache(method=NOOP, max_attempts=3), NOOP)
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert taches.cancel(first, who="alice") is Status.RUNNING
    if ended is Status.INTERRUPTED:
        final = store().end_on_behalf(first, claimed.attempt, ended, "process died")
    else:
        final = store().record_end(first, claimed.attempt, ended, logs=[])
    assert final is Status.CANCELLED
    assert row(first)["status"] == Status.CANCELLED
    assert "cancelled by alice" in messages(first)[-1]
    assert row(second)["status"] == Status.CANCELLED, "the rest of the chain too"
    assert store().claim_batch(5, max_running=5, hostname=HOST) == []


@pytest.mark.parametrize("ended", [Status.FAILED, Status.INTERRUPTED])
def test_a_retrys_run_at_is_backed_off_and_doubles(db_ctx: Flask, ended: Status) -> None:
    claimed = claim_one_task(max_attempts=3)
    base = store().retry_base
    for attempt, backoff in ((1, base), (2, 2 * base)):
        before = utcnow()
        if ended is Status.FAILED:
            final = store().record_end(claimed.id, attempt, ended, logs=[])
        else:
            final = store().end_on_behalf(claimed.id, attempt, ended, "process died")
        after = utcnow()
        assert final is Status.TO_RUN
        stored = row(claimed.id)
        assert stored["status"] == Status.TO_RUN
        assert stored["ended_at"] is not None and stored["heartbeat_at"] is None
        low = before + timedelta(seconds=backoff * LOW) - timedelta(milliseconds=5)
        high = after + timedelta(seconds=backoff * HIGH) + timedelta(milliseconds=5)
        assert low <= stored["run_at"] <= high, (attempt, stored["run_at"] - before)
        assert (
            f"attempt {attempt} of 3 ended {ended.value}; retrying in" in messages(claimed.id)[-1]
        )
        assert store().claim_batch(1, max_running=5, hostname=HOST) == [], "not before run_at"
        set_columns(claimed.id, run_at=utcnow() - timedelta(seconds=1))
        (again,) = store().claim_batch(1, max_running=5, hostname=HOST)
        assert (again.id, again.attempt) == (claimed.id, attempt + 1)


def test_the_last_attempt_keeps_its_failure(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=1)
    assert store().record_end(claimed.id, claimed.attempt, Status.FAILED, logs=[]) is Status.FAILED
    assert row(claimed.id)["status"] == Status.FAILED
    assert store().claim_batch(1, max_running=5, hostname=HOST) == []


def test_no_retry_for_what_would_fail_the_same_way(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=3)
    final = store().record_end(claimed.id, claimed.attempt, Status.FAILED, logs=[], retry=False)
    assert final is Status.FAILED
    assert row(claimed.id)["status"] == Status.FAILED


def test_the_end_stores_result_logs_and_progress(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    logs = [{"level": "info", "message": "done", "details": None, "at": utcnow().isoformat()}]
    progress = {"current": 3, "total": 3}
    final = store().record_end(
        claimed.id, claimed.attempt, Status.COMPLETED, result={"n": 1}, logs=logs, progress=progress
    )
    assert final is Status.COMPLETED
    stored = row(claimed.id)
    assert (stored["status"], stored["result"], stored["logs"], stored["progress"]) == (
        Status.COMPLETED,
        {"n": 1},
        logs,
        progress,
    )
    assert stored["ended_at"] is not None and stored["heartbeat_at"] is None


def test_a_retry_keeps_the_log_of_the_failed_attempt(db_ctx: Flask) -> None:
    claimed = claim_one_task(max_attempts=2)
    logs = [{"level": "error", "message": "boom", "details": None, "at": utcnow().isoformat()}]
    store().record_end(claimed.id, claimed.attempt, Status.FAILED, logs=logs)
    found = messages(claimed.id)
    assert found[0] == "boom" and found[-1].startswith("attempt 1 of 2 ended FAILED")


def test_forked_children_draw_their_own_retry_jitter(db_ctx: Flask) -> None:
    """Tasks failing together must not all come back at the same instant."""
    ids = add(3, max_attempts=2)
    claimed = store().claim_batch(3, max_running=5, hostname=HOST)
    store().before_fork()
    for task in claimed:
        pid = os.fork()
        if pid == 0:  # a task's process, forked from the same warm store
            code = 1
            try:
                store().forget_connections_after_fork()
                ended = store().record_end(task.id, task.attempt, Status.FAILED, logs=[])
                code = 0 if ended is Status.TO_RUN else 1
            finally:
                os._exit(code)
        _, wait_status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wait_status) == 0
    delays = {row(i)["run_at"] - row(i)["ended_at"] for i in ids}
    assert len(delays) == 3, f"the same delay drawn twice: {sorted(delays)}"
