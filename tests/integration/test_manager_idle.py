"""An idle manager woken by its database polls rarely, and misses nothing for it.

With TACHES_IDLE_POLL far beyond the test's deadline, any task found only by
that poll would fail the test: the new task must come through the wake-up
(file watch, LISTEN), and one added to run a little later through the read of
the earliest ``run_at`` after an empty claim. MySQL/MariaDB have no wake-up:
their managers keep polling every TACHES_POLL seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from flask_taches.clock import utcnow
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, row, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.dialects("sqlite", "postgresql")]

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
