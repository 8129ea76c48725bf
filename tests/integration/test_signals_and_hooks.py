"""Signals (``tache_added``, ``tache_started``, ``tache_finished``) and ``on_success`` /
``on_failure``, each in the process where it happens, on every database."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import MethodNotFound, MethodRefused, Status
from flask_taches.runner import run_one
from tests.app import db, taches
from tests.hook_tasks import SIGNAL_LOG_VARIABLE, connect_receivers
from tests.manager_helpers import managers, row, rows, wait_for
from tests.manager_tasks import read_lines

HOOKS = "tests.hook_tasks"
DEADLINE = 30.0
HERE = f"pid={os.getpid()}"


@pytest.fixture
def log(db_ctx: Flask, tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "events.txt")
    connect_receivers(db_ctx, path)
    yield path


def add(method: str, path: str, **options: object) -> int:
    tache_id = taches.add(f"{HOOKS}:{method}", parametres={"path": path}, **options)
    db.session.remove()
    return tache_id


def test_a_receiver_sees_each_transition_here(log: str) -> None:
    tache_id = add("succeed", log, queue="mail")
    assert run_one(tache_id) is Status.COMPLETED
    assert read_lines(log) == [
        f"added {tache_id} {HOOKS}:succeed mail {HERE}",
        f"started {tache_id} 1 {HERE}",
        f"finished {tache_id} 1 COMPLETED {HERE}",
    ]


def test_a_retry_finishes_as_to_run_then_the_last_attempt_as_failed(log: str) -> None:
    tache_id = add("fail_always", log, max_attempts=2, on_failure=f"{HOOKS}:on_end")
    assert run_one(tache_id) is Status.TO_RUN
    db.session.remove()
    assert run_one(tache_id, force=True) is Status.FAILED
    events = [line.rsplit(" pid=", 1)[0] for line in read_lines(log)]
    assert events == [
        f"added {tache_id} {HOOKS}:fail_always default",
        f"started {tache_id} 1",
        f"finished {tache_id} 1 TO_RUN",  # no hook: the task is not over
        f"started {tache_id} 2",
        f"finished {tache_id} 2 FAILED",
        f"hook {tache_id} FAILED FAILED None",
    ]


def test_on_success_is_called_with_the_recorded_end(log: str) -> None:
    tache_id = add("succeed", log, on_success=f"{HOOKS}:on_end", on_failure=f"{HOOKS}:broken_hook")
    assert run_one(tache_id) is Status.COMPLETED
    assert read_lines(log)[-1] == f"hook {tache_id} COMPLETED COMPLETED done {HERE}"


def test_a_failing_hook_is_logged_and_changes_nothing(
    log: str, caplog: pytest.LogCaptureFixture
) -> None:
    tache_id = add("succeed", log, on_success=f"{HOOKS}:broken_hook")
    with caplog.at_level(logging.ERROR, logger="flask_taches.runner"):
        assert run_one(tache_id) is Status.COMPLETED
    assert read_lines(log)[-1] == f"broken {tache_id} {HERE}"
    assert row(tache_id)["status"] == Status.COMPLETED
    assert f"task {tache_id}: its on_success hook {HOOKS}:broken_hook failed" in caplog.text


def test_a_hook_may_be_given_as_a_function(log: str) -> None:
    from tests.hook_tasks import on_end

    tache_id = add("succeed", log, on_success=on_end)
    assert row(tache_id)["on_success"] == f"{HOOKS}:on_end"


@pytest.mark.parametrize("hook", ["os:system", "tests.hook_tasks:nothing_here"])
def test_a_hook_outside_the_allowlist_or_missing_is_refused_and_nothing_added(
    log: str, hook: str
) -> None:
    with pytest.raises((MethodRefused, MethodNotFound)) as caught:
        add("succeed", log, on_failure=hook)
    assert "\n" not in str(caught.value)
    assert rows() == {}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["fork", "subprocess"])
def test_under_a_manager_they_run_in_the_tasks_process(
    db_ctx: Flask, tmp_path: Path, executor: str
) -> None:
    log = str(tmp_path / "events.txt")
    ok = add("succeed", log, on_success=f"{HOOKS}:on_end")
    bad = add("fail_always", log, on_failure=f"{HOOKS}:on_end")
    # A process that dies records nothing: its manager records the end, and signals it.
    died = taches.add("tests.manager_tasks:exit_abruptly", on_failure=f"{HOOKS}:on_end")
    db.session.remove()
    with managers(tmp_path, **{SIGNAL_LOG_VARIABLE: log}) as group:
        manager = group.start("--forever", "--executor", executor, "-v")
        wait_for("both ended", lambda: _hooked(log) == 2, DEADLINE, group.output)
        dead_end = f"finished {died} 1 INTERRUPTED pid={manager.pid}"
        wait_for("the dead one's end", lambda: dead_end in read_lines(log), DEADLINE, group.output)
        output = group.output()
    lines = read_lines(log)
    assert not any(line.startswith(f"hook {died} ") for line in lines)  # no task process left
    for tache_id, status in ((ok, "COMPLETED"), (bad, "FAILED")):
        (task_pid,) = re.findall(rf"started task {tache_id} in process (\d+)", output)
        assert int(task_pid) != manager.pid
        pid = f"pid={task_pid}"  # the task's own process, never its manager
        assert f"started {tache_id} 1 {pid}" in lines
        assert f"finished {tache_id} 1 {status} {pid}" in lines
        assert any(
            line.startswith(f"hook {tache_id} {status}") and line.endswith(pid) for line in lines
        )


def _hooked(path: str) -> int:
    return sum(line.startswith("hook ") for line in read_lines(path)) if Path(path).exists() else 0


def test_the_decorator_takes_the_hooks_as_defaults(log: str) -> None:
    from tests.hook_tasks import decorated

    tache_id = decorated.delay(path=log)
    db.session.remove()
    stored = row(tache_id)
    assert (stored["on_success"], stored["on_failure"]) == (
        f"{HOOKS}:on_end",
        f"{HOOKS}:broken_hook",
    )
    assert run_one(tache_id) is Status.COMPLETED
    assert read_lines(log)[-1] == f"hook {tache_id} COMPLETED COMPLETED decorated {HERE}"
