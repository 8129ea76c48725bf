"""``@taches.task``: the function stays itself, and adds itself with its defaults."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask

from flask_taches import InvalidTache, MethodRefused, Status, Tache
from flask_taches.decorators import options_of
from flask_taches.runner import run_one
from tests import decorated_tasks as tasks
from tests.app import db, taches
from tests.manager_helpers import messages, row


def test_calling_the_function_still_calls_it() -> None:
    assert tasks.double(4) == 8
    assert tasks.Reports("x").build("june") == "x:june"
    assert tasks.Reports.count([1, 2]) == 2


def test_delay_adds_it_with_the_decorators_defaults(app_ctx: Flask) -> None:
    tache_id = tasks.double.delay(n=21)
    stored = row(tache_id)
    assert stored["method"] == "tests.decorated_tasks:double"
    assert stored["parametres"] == {"n": 21}
    assert (stored["queue"], stored["max_attempts"], stored["priority"], stored["timeout"]) == (
        "decorated",
        2,
        5,
        30,
    )


def test_add_takes_every_option_and_they_win_over_the_defaults(app_ctx: Flask) -> None:
    tache_id = tasks.double.add(
        parametres={"n": 1}, queue="other", max_attempts=4, signature="d-1", commit=True
    )
    stored = row(tache_id)
    assert (stored["queue"], stored["max_attempts"], stored["signature"]) == ("other", 4, "d-1")
    assert stored["priority"] == 5, "what add() did not say stays the decorator's"
    with pytest.raises(InvalidTache, match="unknown option"):
        tasks.double.add(parametres={"n": 1}, colour="blue")


def test_methods_are_named_by_their_class(app_ctx: Flask) -> None:
    built = row(tasks.Reports.build.delay(name="june"))
    assert (built["method"], built["queue"]) == ("tests.decorated_tasks:Reports.build", "reports")
    assert row(tasks.Reports("x").build.delay(name="july"))["method"] == built["method"]
    assert row(tasks.Reports.count.delay(items=[]))["method"] == (
        "tests.decorated_tasks:Reports.count"
    )


def test_a_decorated_task_runs_and_keeps_its_result(app_ctx: Flask) -> None:
    tache_id = tasks.Reports.build.delay(name="june")
    db.session.remove()
    assert run_one(tache_id) is Status.COMPLETED
    assert row(tache_id)["result"] == "report:june"


def test_retry_on_is_kept_on_the_function() -> None:
    options = options_of(tasks.flaky)
    assert options is not None
    assert options.retry_on == (ConnectionError, TimeoutError)
    assert options.retries(ConnectionError()) and not options.retries(ValueError())
    assert options_of(tasks.Reports("x").build) is options_of(tasks.Reports.build)


def test_the_decorator_refuses_what_cannot_be_a_task(app_ctx: Flask) -> None:
    def inner() -> None:
        pass

    with pytest.raises(InvalidTache, match="exception classes"):
        taches.task(retry_on=("ConnectionError",))(tasks.total)
    with pytest.raises(InvalidTache, match="no importable name"):
        taches.task(inner)
    with pytest.raises(InvalidTache, match="on a function or a method"):
        taches.task(print)
    with pytest.raises(MethodRefused, match="outside TACHES_ALLOWED_MODULES"):
        taches.task(json.dumps)  # checked against the app's allowlist when one is at hand
    assert not hasattr(json.dumps, "delay"), "a refused function is left as it was"


# -- retries, run in this process -------------------------------------------------------


def run_until_settled(tache_id: int, runs: int) -> list[Status | None]:
    """Run the task here ``runs`` times at most, while it is TO_RUN (its retries included)."""
    ended = []
    for _ in range(runs):
        ended.append(run_one(tache_id))
        if ended[-1] is not Status.TO_RUN:
            break
    return ended


def test_an_exception_in_retry_on_is_retried(app_ctx: Flask) -> None:
    tache_id = tasks.flaky.delay(fails=2)
    db.session.remove()
    assert run_until_settled(tache_id, 5) == [Status.TO_RUN, Status.TO_RUN, Status.COMPLETED]
    assert row(tache_id)["result"] == 3
    assert "attempt 1 of 3 ended FAILED" in " ".join(messages(tache_id))


def test_an_exception_not_in_retry_on_fails_without_retry(app_ctx: Flask) -> None:
    tache_id = tasks.wrong_error.delay()
    db.session.remove()
    assert run_one(tache_id) is Status.FAILED
    assert row(tache_id)["attempts"] == 1
    assert messages(tache_id)[-2:] == [
        "ValueError: a bug, not a network hiccup",
        "ValueError is not in the task's retry_on: not retried",
    ]


def test_a_task_asking_for_a_retry_gets_its_next_attempt_at_the_delay(app_ctx: Flask) -> None:
    tache_id = tasks.asks_retry.delay(times=1, delay=60)
    db.session.remove()
    assert run_one(tache_id) is Status.TO_RUN
    stored = row(tache_id)
    assert stored["run_at"] > stored["started_at"] + timedelta(seconds=59)
    assert messages(tache_id)[-3:] == [
        "not ready at attempt 1",
        "the task asked for a retry: retry asked in 60s",
        "attempt 1 of 3 asked for a retry; retrying in 60.0s",
    ]
    assert run_one(tache_id) is Status.COMPLETED
    assert row(tache_id)["result"] == 2


def test_a_retry_asked_for_on_the_last_attempt_fails(app_ctx: Flask) -> None:
    tache_id = tasks.asks_retry.delay(times=10)
    db.session.remove()
    assert run_until_settled(tache_id, 5) == [Status.TO_RUN, Status.TO_RUN, Status.FAILED]
    assert messages(tache_id)[-1] == (
        "the task asked for a retry, but attempt 3 of 3 was its last: FAILED"
    )


def test_retry_outside_a_task_is_refused_on_a_bad_delay() -> None:
    with pytest.raises(ValueError, match="retry delay"):
        Tache(method="x:y").retry(delay=-1)


def test_unique_is_passed_on_to_add(app_ctx: Flask) -> None:
    imports = tasks.imports
    first = imports.add(parametres={"path": "a.csv"}, signature="import-a")
    assert imports.add(parametres={"path": "a.csv"}, signature="import-a") == first
    assert imports.add(parametres={"path": "a.csv"}, signature="import-a", unique=False) != first


@pytest.mark.taches_config(TACHES_EAGER=True)
def test_eager_mode_runs_a_task_added_by_a_task(app_ctx: Flask) -> None:
    outer = taches.get_or_raise(tasks.adds_another.delay(n=5))
    assert outer.status == Status.COMPLETED
    inner = taches.get_or_raise(outer.result)
    assert (inner.status, inner.result) == (Status.COMPLETED, 10)
    assert messages(outer.id)[-1] == "adding a task from a task"


def test_end_hooks_are_defaults_too(app_ctx: Flask) -> None:
    stored = row(tasks.hooked.delay())
    assert (stored["on_success"], stored["on_failure"]) == (
        "tests.tasks:returns_nothing",
        "tests.tasks:returns_false",
    )
    assert row(tasks.hooked.add(on_failure=None))["on_failure"] is None
