"""The runner, in this process: resolution, injection, outcomes, stops and fencing.

Real processes (``flask taches run`` subprocesses) are in
``tests/integration/test_runner_processes.py`` and ``test_cli_tasks.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from flask_taches import InvalidTransition, MethodRefused, Status, Tache, TacheNotFound
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from flask_taches.runner import run_claimed, run_one
from tests import polling, tasks
from tests.app import taches

WAIT = 10.0  # seconds a test waits for another thread before failing

pytestmark = pytest.mark.taches_config(
    TACHES_HEARTBEAT=0.1, TACHES_FLUSH_INTERVAL=0.05, TACHES_KILL_GRACE=5.0
)


def row(tache_id: int) -> dict[str, Any]:
    """The row as stored now, read on a connection of its own."""
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
        return dict(found.mappings().one())


def messages(tache_id: int) -> list[str]:
    return [entry["message"] for entry in row(tache_id)["logs"]]


def wait_for(predicate: Callable[[], Any]) -> Any:
    return polling.wait_for(predicate, repr(predicate), WAIT, interval=0.01)


def started(tache_id: int) -> bool:
    """The task's own process has said who it is (``mark_started``)."""
    return row(tache_id)["pid"] is not None


def in_thread(app: Flask, func: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def target() -> None:
        with app.app_context():
            results.append(func())

    thread = threading.Thread(target=target)
    thread.start()
    return thread, results


def add_and_run(method: str, **options: Any) -> dict[str, Any]:
    tache_id = taches.add(method, **options)
    status = run_one(tache_id)
    stored = row(tache_id)
    assert stored["status"] == status
    return stored


# -- outcomes --------------------------------------------------------------------------------


def test_a_function_completes_and_its_run_is_recorded(db_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:add", parametres={"a": 1})
    assert stored["status"] == Status.COMPLETED
    assert stored["result"] == 11
    assert stored["attempts"] == 1
    assert stored["pid"] == os.getpid()
    assert stored["hostname"] == socket.gethostname()
    assert stored["heartbeat_at"] is None
    assert isinstance(stored["started_at"], datetime)
    assert stored["started_at"] <= stored["ended_at"]


@pytest.mark.parametrize(
    ("method", "parametres", "result"),
    [
        ("tests.tasks.add", {"a": 2, "b": 3}, 5),
        ("tests.tasks:Tools.double", {"n": 4}, 8),
        ("tests.tasks.Tools.triple", {"n": 4}, 12),
        ("tests.tasks:returns_nothing", {}, None),
    ],
)
def test_dotted_static_and_class_methods(
    app_ctx: Flask, method: str, parametres: dict[str, Any], result: Any
) -> None:
    stored = add_and_run(method, parametres=parametres)
    assert (stored["status"], stored["result"]) == (Status.COMPLETED, result)


def test_an_instance_method_gets_its_class_built_by_injection(db_ctx: Flask) -> None:
    stored = add_and_run(
        "tests.tasks:Greeter.greet", parametres={"name": "Ada", "greeting": "bonjour"}
    )
    assert stored["status"] == Status.COMPLETED
    assert stored["result"] == "bonjour Ada from tests"
    assert [e["message"] for e in stored["logs"]] == ["greeting Ada"]


def test_registered_services_object_and_factory(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(taches.hooks, "services", {})
    taches.register_service("clock", tasks.Clock)  # a class: built per run, by injection
    taches.register_service("greeter_prefix", "served")  # a ready object
    stored = add_and_run("tests.tasks:uses_services")
    assert stored["result"] == "served: noon at tests"


def test_an_exception_fails_the_task_with_its_traceback(db_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:raises")
    assert stored["status"] == Status.FAILED
    first, error = stored["logs"]
    assert first["message"] == "about to fail"
    assert (error["level"], error["message"]) == ("error", "ValueError: boom from the task")
    assert error["details"].startswith("Traceback (most recent call last)")
    assert 'raise ValueError("boom from the task")' in error["details"]
    runner_dir = os.path.join("flask_taches", "runner") + os.sep
    assert runner_dir not in error["details"], "the runner's own frames are cut"


def test_returning_false_fails_the_task(db_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:returns_false")
    assert stored["status"] == Status.FAILED
    assert [e["message"] for e in stored["logs"]] == ["could not do it", "the task returned False"]


def test_a_missing_parameter_fails_the_task_naming_it_without_retry(db_ctx: Flask) -> None:
    """Another attempt would fail the same way: attempts left are not spent on it.

    add() refuses such a task; here the service that provided the parameter
    when it was added is gone by the time it runs.
    """
    taches.register_service("missing_thing", "there when added")
    tache_id = taches.add("tests.tasks:needs_missing", parametres={"other": 1}, max_attempts=3)
    del taches.hooks.services["missing_thing"]
    run_one(tache_id)
    stored = row(tache_id)
    assert (stored["status"], stored["attempts"]) == (Status.FAILED, 1)
    assert "'missing_thing'" in stored["logs"][-1]["message"]
    assert stored["logs"][-1]["message"].endswith("not retried")


def test_a_task_that_raises_is_still_retried(db_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:raises", max_attempts=3)
    assert (stored["status"], stored["attempts"]) == (Status.TO_RUN, 1)


def test_a_result_that_is_not_json_keeps_its_repr_with_a_warning(app_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:not_json")
    assert stored["status"] == Status.COMPLETED
    assert stored["result"] == repr({1, 2, 3})
    assert stored["logs"][-1]["level"] == "warning"
    assert "not JSON" in stored["logs"][-1]["message"]


def test_builtins_and_a_logger_whose_records_become_logs(db_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:uses_builtins")
    assert stored["result"] == {"id": stored["id"], "app": "tests", "db": "SQLAlchemy"}
    logs = [(e["level"], e["message"]) for e in stored["logs"]]
    assert logs == [
        ("info", "hello from the logger"),
        ("error", "caught something"),
        ("warning", "a warning"),
    ], "debug records are never stored"
    assert "KeyError: 'inner'" in stored["logs"][1]["details"]
    assert stored["logs"][2]["details"] == {"k": 1}


def test_a_task_committing_its_own_session_cannot_touch_its_row(db_ctx: Flask) -> None:
    stored = add_and_run("tests.tasks:commits_own_session")
    assert stored["status"] == Status.COMPLETED
    assert stored["result"] == "detached"


def test_a_retry_is_scheduled_when_attempts_remain(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:raises", max_attempts=2)
    assert run_one(tache_id) is Status.TO_RUN
    stored = row(tache_id)
    assert (stored["status"], stored["attempts"]) == (Status.TO_RUN, 1)
    assert stored["run_at"] > stored["ended_at"]
    assert "retrying" in stored["logs"][-1]["message"]


# -- logs -----------------------------------------------------------------------------------

CHATTY_LINES = 2000


def chatty(tache: Tache) -> dict[str, Any]:
    """A task logging many lines, telling whether its ``logs`` stayed one growing list."""
    logs = tache.logs
    before = len(logs)
    for n in range(CHATTY_LINES):
        tache.info(f"line {n}")
    return {"same_list": tache.logs is logs, "grew_by": len(tache.logs) - before}


@pytest.mark.taches_config(TACHES_MAX_LOGS=CHATTY_LINES + 1)
def test_a_chatty_task_appends_its_logs_without_copying_them(db_ctx: Flask) -> None:
    """Each entry is appended in place: N lines cost O(N), not a copy of the list per line."""
    stored = add_and_run("tests.unit.test_runner:chatty")
    assert stored["status"] == Status.COMPLETED
    assert stored["result"] == {"same_list": True, "grew_by": CHATTY_LINES}
    assert messages(stored["id"]) == [f"line {n}" for n in range(CHATTY_LINES)]


def test_logs_appended_to_a_tache_in_a_session_are_stored(db_ctx: Flask) -> None:
    """The ORM does not watch inside a JSON value: it is told, and the entry is written."""
    session = taches.db().session
    item = Tache(method="tests.tasks:add")
    item.info("while pending")
    session.add(item)
    item.info("once added")
    session.commit()
    item.warning("once stored")
    session.commit()
    assert messages(item.id) == ["while pending", "once added", "once stored"]
    session.remove()


# -- secrets -------------------------------------------------------------------------------


def test_parametres_caches_is_injectable_and_never_shown(
    db_ctx: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    tache_id = taches.add(
        "tests.tasks:uses_secret", parametres={"n": 1}, parametres_caches={"token": tasks.SECRET}
    )
    assert run_one(tache_id, verbosity=2) is Status.COMPLETED
    stored = row(tache_id)
    assert stored["result"] == len(tasks.SECRET)
    assert stored["parametres_caches"] == {"token": tasks.SECRET}, "kept for the task"
    assert tasks.SECRET not in json.dumps(stored["logs"])
    assert tasks.SECRET not in json.dumps(taches.get_or_raise(tache_id).to_dict(), default=str)
    out, err = capsys.readouterr()
    assert "got a token of 24 characters" in out
    assert tasks.SECRET not in out + err


# -- refusals ------------------------------------------------------------------------------


def test_a_method_refused_at_run_time_leaves_the_row_untouched(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    before = row(tache_id)
    with taches.store().write() as conn:  # edited behind add()'s back
        conn.execute(
            update(taches_table).where(taches_table.c.id == tache_id).values(method="os:getcwd")
        )
    with pytest.raises(MethodRefused, match="outside TACHES_ALLOWED_MODULES"):
        run_one(tache_id)
    assert row(tache_id) == {**before, "method": "os:getcwd"}


def test_a_refused_method_claimed_by_a_manager_ends_failed(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1}, max_attempts=3)
    with taches.store().write() as conn:
        conn.execute(
            update(taches_table).where(taches_table.c.id == tache_id).values(method="os:getcwd")
        )
    attempt = taches.store().claim_one(tache_id)
    assert run_claimed(tache_id, attempt) is Status.FAILED, "refused again: no retry"
    assert "outside TACHES_ALLOWED_MODULES" in messages(tache_id)[-1]


def test_a_method_walking_out_of_the_allowlist_ends_failed(db_ctx: Flask) -> None:
    """The module is allowed, the walk reaches what it imported: refused at run time."""
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    with taches.store().write() as conn:
        conn.execute(
            update(taches_table)
            .where(taches_table.c.id == tache_id)
            .values(method="tests.tasks:os.getcwd")
        )
    attempt = taches.store().claim_one(tache_id)
    assert run_claimed(tache_id, attempt) is Status.FAILED
    assert "walks through module 'os'" in messages(tache_id)[-1]


def test_unknown_id_and_not_to_run(db_ctx: Flask) -> None:
    with pytest.raises(TacheNotFound):
        run_one(424242)
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    assert run_one(tache_id) is Status.COMPLETED
    with pytest.raises(InvalidTransition, match="not TO_RUN"):
        run_one(tache_id)
    assert row(tache_id)["attempts"] == 1, "a refused run changes nothing"
    assert run_one(tache_id, force=True) is Status.COMPLETED
    assert row(tache_id)["attempts"] == 2


def test_run_claimed_refuses_a_row_it_does_not_own(app_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    before = row(tache_id)
    assert run_claimed(tache_id, 1) is None, "TO_RUN, not claimed"
    assert run_claimed(424242, 1) is None
    assert row(tache_id) == before


# -- fencing -------------------------------------------------------------------------------


def test_a_stale_attempts_writes_change_nothing(db_ctx: Flask) -> None:
    store = taches.store()
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    stale = store.claim_one(tache_id)
    # Declared dead elsewhere, then claimed again: attempt 2 owns the row now.
    assert store.record_end(tache_id, stale, Status.INTERRUPTED) is Status.INTERRUPTED
    store.restart(tache_id)
    current = store.claim_one(tache_id)
    before = row(tache_id)
    assert not store.record_start(tache_id, stale, 1, "ghost")
    assert not store.record_live(tache_id, stale, logs=[], progress={"step": 1})
    assert not store.beat(tache_id, stale).owned
    assert store.record_end(tache_id, stale, Status.COMPLETED, result="stale") is None
    assert run_claimed(tache_id, stale) is None
    assert row(tache_id) == before
    assert run_claimed(tache_id, current) is Status.COMPLETED
    assert (row(tache_id)["result"], row(tache_id)["attempts"]) == (11, current)


def test_an_attempt_fenced_out_while_running_stops_and_writes_nothing(db_ctx: Flask) -> None:
    store = taches.store()
    tache_id = taches.add("tests.tasks:slow", parametres={"seconds": WAIT})
    attempt = store.claim_one(tache_id)
    snapshots: list[dict[str, Any]] = []

    def declare_dead() -> None:
        wait_for(lambda: "slow task begins" in messages(tache_id))
        store.record_end(tache_id, attempt, Status.INTERRUPTED)
        snapshots.append(row(tache_id))

    thread, _ = in_thread(db_ctx, declare_dead)
    assert run_claimed(tache_id, attempt) is None
    thread.join()
    assert row(tache_id) == snapshots[0]
    assert row(tache_id)["status"] == Status.INTERRUPTED
    assert "slow task ends" not in messages(tache_id)


# -- stops -----------------------------------------------------------------------------------


def test_cancel_stops_a_running_task(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:slow", parametres={"seconds": WAIT})
    thread, _ = in_thread(
        db_ctx, lambda: wait_for(lambda: started(tache_id)) and taches.cancel(tache_id, who="ann")
    )
    assert run_one(tache_id) is Status.CANCELLED
    thread.join()
    stored = row(tache_id)
    assert stored["status"] == Status.CANCELLED
    assert stored["logs"][-1]["message"].startswith("cancelled by ann at ")
    assert "slow task ends" not in messages(tache_id)


@pytest.mark.taches_config(TACHES_HEARTBEAT=2.5, TACHES_FLUSH_INTERVAL=0.05)
def test_the_cancel_log_says_when_the_cancel_was_asked_not_when_a_beat_saw_it(
    db_ctx: Flask,
) -> None:
    tache_id = taches.add("tests.tasks:slow", parametres={"seconds": WAIT})
    asked: list[datetime] = []

    def cancel() -> None:
        wait_for(lambda: started(tache_id))
        asked.append(utcnow().replace(microsecond=0))
        taches.cancel(tache_id, who="ann")
        asked.append(utcnow())

    thread, _ = in_thread(db_ctx, cancel)
    assert run_one(tache_id) is Status.CANCELLED
    thread.join()
    message = row(tache_id)["logs"][-1]["message"]
    logged = datetime.fromisoformat(message.removeprefix("cancelled by ann at "))
    # The next beat came up to 2.5 s later; the log keeps the time of the ask.
    assert asked[0] <= logged <= asked[1], (asked, message)


def test_a_timeout_fails_the_task(app_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:slow", parametres={"seconds": WAIT}, timeout=0.3)
    assert run_one(tache_id) is Status.FAILED
    assert messages(tache_id)[-1] == "timeout after 0.3 s"


def test_signal_handlers_are_restored(app_ctx: Flask) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    add_and_run("tests.tasks:add", parametres={"a": 1})
    assert {s: signal.getsignal(s) for s in before} == before


def test_off_the_main_thread_the_end_is_still_right(db_ctx: Flask) -> None:
    store = taches.store()
    tache_id = taches.add("tests.tasks:slow", parametres={"seconds": 0.5})
    attempt = store.claim_one(tache_id)
    thread, results = in_thread(db_ctx, lambda: run_claimed(tache_id, attempt))
    wait_for(lambda: started(tache_id))
    taches.cancel(tache_id, who="bob")
    thread.join()
    # Not interruptible from there: the task ran to its end, but was asked to stop.
    assert results == [Status.CANCELLED]
    assert messages(tache_id)[-2:] == ["slow task ends", messages(tache_id)[-1]]
    assert messages(tache_id)[-1].startswith("cancelled by bob")
    assert threading.current_thread() is threading.main_thread()
