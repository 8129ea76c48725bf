"""An idle manager woken by its database polls rarely, misses nothing for it, costs little.

With TACHES_IDLE_POLL far beyond the test's deadline, any task found only by
that poll would fail the test: the new task must come through the wake-up
(file watch, LISTEN, MySQL's looks every TACHES_POLL), and one added to run a
little later through the read of the earliest ``run_at`` after an empty
claim (or the next look).

What idling costs is counted, not timed: the statements an idle manager runs
over a few seconds stay under a bound its settings give, and on SQLite it
opens no connection but its writes' (a read on a fresh connection, alone on
the file, costs a checkpoint and the WAL made again).
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.store.looks import Looks
from flask_taches.worker.manager import Manager
from flask_taches.worker.options import ManagerOptions
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, row, wait_for

pytestmark = pytest.mark.slow

NOOP = "tests.manager_tasks:noop"
IDLE_POLL = "600"  # seconds: never reached within a test
DEADLINE = 30.0  # seconds any expected state gets to appear (a loaded 2-core machine)


@pytest.fixture
def group(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    with managers(tmp_path, TACHES_IDLE_POLL=IDLE_POLL) as started:
        yield started


def completed(tache_id: int) -> bool:
    return row(tache_id)["status"] == Status.COMPLETED.value


def wait_idle(group: Managers) -> None:
    """The manager is up and has made its first, empty, claim (it says so at -v)."""
    first = taches.add(NOOP)
    db.session.remove()
    wait_for("a first task COMPLETED", lambda: completed(first), DEADLINE, group.output)


def test_tasks_added_one_at_a_time_are_woken_not_polled(group: Managers) -> None:
    group.start("--forever", "-v")
    wait_idle(group)
    for _ in range(5):
        tache_id = taches.add(NOOP)
        db.session.remove()
        wait_for(f"task {tache_id} COMPLETED", lambda i=tache_id: completed(i), DEADLINE)


def test_a_task_due_later_starts_at_its_run_at(group: Managers) -> None:
    group.start("--forever", "-v")
    wait_idle(group)
    run_at = utcnow() + timedelta(seconds=2)
    tache_id = taches.add(NOOP, run_at=run_at)
    db.session.remove()
    wait_for("the later task COMPLETED", lambda: completed(tache_id), DEADLINE, group.output)
    assert row(tache_id)["started_at"] >= run_at


#: Statements of one supervision pass while idle: the rescue's two reads, the
#: beat's two writes (its UPDATE, the DELETE of stale rows, each after SQLite's
#: BEGIN IMMEDIATE), and on SQLite the read each of its own commits' wake-ups makes.
PASS_STATEMENTS = 8
#: Statements of one poll: a claim (lock, count, ready rows, release) and the
#: read of the earliest run_at after it.
POLL_STATEMENTS = 6
COUNTED = 4.0  # seconds of idling counted


class Counts:
    """Statements run and connections opened, by every engine of this process."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.counting = False

    def statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.counting:
            self.seen["statements"] += 1
            self.seen[" ".join(statement.split()[:3])] += 1

    def commit(self, conn: Any) -> None:
        if self.counting:
            self.seen["commits"] += 1

    def connect(self, dbapi_connection: Any, record: Any) -> None:
        if self.counting:
            self.seen["connections"] += 1


@pytest.fixture
def counts() -> Iterator[Counts]:
    found = Counts()
    hooks = [
        (Engine, "before_cursor_execute", found.statement),
        (Engine, "commit", found.commit),
        (Pool, "connect", found.connect),
    ]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    yield found
    for target, name, hook in hooks:
        event.remove(target, name, hook)


def most_statements(options: ManagerOptions, seconds: float) -> float:
    """The statements ``seconds`` of idling may cost, from the settings alone."""
    passes = seconds / options.check_every + 1
    polls = seconds / options.idle_poll + 1
    return PASS_STATEMENTS * passes + POLL_STATEMENTS * polls


def looks(manager: Manager) -> int:
    """MySQL's looks for work so far (one read each, on a bare DBAPI connection)."""
    source = manager.wakeups.source
    return source.looks if isinstance(source, Looks) else 0


def test_an_idle_manager_runs_few_statements(db_ctx: Flask, counts: Counts) -> None:
    options = ManagerOptions.from_config(
        db_ctx.config, forever=True, poll=0.1, idle_poll=5.0, heartbeat=1.0
    )
    manager = Manager(db_ctx, options)

    def run() -> None:
        with db_ctx.app_context():
            manager.run()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for("the manager registered", lambda: manager.registration.manager_id, DEADLINE)
        time.sleep(2 * options.poll)  # its first claim made
        counts.counting, looked = True, looks(manager)
        time.sleep(COUNTED)
        counts.counting, looked = False, looks(manager) - looked
    finally:
        manager.request_stop()
        thread.join(DEADLINE)
        manager.close()
        assert not thread.is_alive(), "the manager did not stop"
        gc.unfreeze()  # run() froze this process's objects for its children
    seen = counts.seen
    bound = most_statements(options, COUNTED)
    assert 0 < seen["statements"] <= bound, f"{seen} (bound {bound:g})"
    assert looked <= COUNTED / options.poll + 1
    if db.engine.dialect.name == "mysql":
        assert looked > 0, "MySQL's manager looks for work"
    # SQLite's writer opens a connection for each write; the reads reuse one kept open.
    assert seen["connections"] <= seen["commits"] + 1, f"{seen}"
