"""Wake-up sources: what an idle manager sleeps on until work may have arrived.

SQLite watches its files, PostgreSQL LISTENs, MySQL/MariaDB (no
notification) look for claimable work every TACHES_POLL seconds: each wakes
when another connection adds a task.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import text

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.store import WaitingFor, WakeSource
from tests.app import db
from tests.store.helpers import add, new_row, set_columns, store

#: Seconds a wait ended by a readable fd may take: far below its 30 s timeout.
PROMPT = 2.0


@pytest.fixture
def wake_fd() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


@pytest.fixture
def listener(db_ctx: Flask) -> Iterator[WakeSource]:
    source = store().wake_source(WaitingFor(max_running=5))
    yield source
    source.close()


def timed_wait(source: WakeSource, timeout: float, fd: int | None = None) -> tuple[bool, float]:
    start = time.monotonic()
    woken = source.wait(timeout, fd)
    return woken, time.monotonic() - start


def test_listener_wakes_on_a_new_task(listener: WakeSource) -> None:
    assert listener.wait(0.05) is False
    add(1)  # through the app's session: another connection than the listener's
    woken, took = timed_wait(listener, 5.0)
    assert woken is True
    assert took < 5.0


def test_listener_wakes_on_a_task_inserted_by_the_store(listener: WakeSource) -> None:
    with store().write() as conn:
        store().insert(conn, [new_row(0), new_row(1)])
    woken, took = timed_wait(listener, 5.0)
    assert woken is True and took < 5.0


@pytest.mark.dialects("mysql")
def test_mysql_looks_for_a_task_that_comes_due(db_ctx: Flask) -> None:
    """Not only new rows: a run_at come due and a slot freed are seen at the next look."""
    source = store().wake_source(WaitingFor(max_running=1, poll=0.05))
    try:
        later = add(1, run_at=utcnow() + timedelta(seconds=1))
        assert source.wait(0.2) is False, "not due yet"
        assert source.wait(30.0) is True, "due now"
        claimed = store().claim_batch(1, max_running=1, hostname="test")
        assert [task.id for task in claimed] == later
        add(1)
        assert source.wait(0.3) is False, "the one slot is taken"
        set_columns(claimed[0].id, status=Status.COMPLETED.value)
        assert source.wait(30.0) is True, "the slot is free"
    finally:
        source.close()


def test_listener_stops_waiting_when_the_wake_fd_is_readable(
    listener: WakeSource, wake_fd: tuple[int, int]
) -> None:
    read_fd, write_fd = wake_fd
    os.write(write_fd, b"x")
    woken, took = timed_wait(listener, 30.0, read_fd)
    assert woken is False
    assert took < PROMPT, f"waited {took:.1f}s with the wake fd readable"


def test_a_listener_with_nothing_to_wait_on_sleeps_its_timeout(listener: WakeSource) -> None:
    woken, took = timed_wait(listener, 0.2)
    assert woken is False
    assert took >= 0.15


@pytest.mark.dialects("mysql")
def test_mysql_looks_again_on_a_new_connection_after_the_server_dropped_its_own(
    db_ctx: Flask,
) -> None:
    """A server restarted while the manager was busy (not looking): no error, the next look
    reconnects and finds the task."""
    source = store().wake_source(WaitingFor(max_running=5, poll=0.05))
    try:
        with db.engine.connect() as conn:
            others = conn.execute(
                text(
                    "SELECT ID FROM information_schema.PROCESSLIST"
                    " WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
                )
            ).scalars()
            for thread in list(others):
                conn.execute(text(f"KILL {int(thread)}"))
        db.engine.dispose()  # this process's pooled connections were killed too
        add(1)
        assert source.wait(30.0) is True
    finally:
        source.close()
