"""``@taches.task``, ``retry_on``, ``tache.retry`` and groups, run by a real manager.

One ``flask taches start`` process per database (SQLite, PostgreSQL,
MariaDB) runs tasks added from this process through the decorator; the
rows say how each ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status, Tache
from tests import decorated_tasks as tasks
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, messages, row, wait_for

pytestmark = pytest.mark.slow

DEADLINE = 60.0  # seconds for every task to settle (a loaded 2-core machine)
SETTLED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


@pytest.fixture
def manager(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    with managers(tmp_path) as started:
        yield started


def test_decorated_tasks_round_trip_through_a_manager(manager: Managers) -> None:
    ids = {
        "double": tasks.double.delay(n=21),
        "method": tasks.Reports.build.delay(name="june"),
        "flaky": tasks.flaky.delay(fails=2),
        "wrong_error": tasks.wrong_error.delay(),
        "asks_retry": tasks.asks_retry.delay(times=2, delay=0.2),
        "gives_up": tasks.asks_retry.add(parametres={"times": 5}, max_attempts=2),
    }
    *members, callback = taches.group(
        Tache(method="tests.decorated_tasks:double", parametres={"n": 1}),
        Tache(method="tests.decorated_tasks:double", parametres={"n": 2}),
        Tache(method="tests.decorated_tasks:Reports.count", parametres={"items": [1, 2, 3]}),
        then="tests.decorated_tasks:total",
    )
    db.session.remove()
    manager.start("--forever", "-v")
    every = [*ids.values(), *members, callback]
    wait_for(
        "every task settled",
        lambda: all(row(i)["status"] in SETTLED for i in every),
        DEADLINE,
        manager.output,
    )
    ended = {name: row(tache_id) for name, tache_id in ids.items()}
    assert (ended["double"]["status"], ended["double"]["result"]) == (Status.COMPLETED, 42)
    assert ended["double"]["queue"] == "decorated"
    assert ended["method"]["result"] == "report:june"
    # retry_on: ConnectionError is retried (twice here), ValueError is not.
    assert (ended["flaky"]["status"], ended["flaky"]["result"]) == (Status.COMPLETED, 3)
    assert (ended["wrong_error"]["status"], ended["wrong_error"]["attempts"]) == (
        Status.FAILED,
        1,
    )
    assert messages(ids["wrong_error"])[-1] == (
        "ValueError is not in the task's retry_on: not retried"
    )
    # tache.retry: two attempts ask for another, the third completes.
    assert (ended["asks_retry"]["status"], ended["asks_retry"]["result"]) == (Status.COMPLETED, 3)
    assert (ended["gives_up"]["status"], ended["gives_up"]["attempts"]) == (Status.FAILED, 2)
    assert messages(ids["gives_up"])[-1] == (
        "the task asked for a retry, but attempt 2 of 2 was its last: FAILED"
    )
    # The group's callback got the members' results, in the group's order.
    finished = row(callback)
    assert finished["parametres"]["previous"] == [2, 4, 3]
    assert (finished["status"], finished["result"]) == (Status.COMPLETED, 9)


def test_a_failing_member_cancels_the_groups_callback(manager: Managers) -> None:
    *members, callback = taches.group(
        "tests.decorated_tasks:wrong_error",
        Tache(method="tests.decorated_tasks:double", parametres={"n": 1}),
        then="tests.decorated_tasks:total",
    )
    db.session.remove()
    manager.start("--forever")
    wait_for("the callback settled", lambda: row(callback)["status"] in SETTLED, DEADLINE)
    assert row(callback)["status"] == Status.CANCELLED
    assert messages(callback)[-1] == f"cancelled: task {members[0]} of its group ended FAILED"
