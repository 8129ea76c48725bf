"""Tasks that attack their own manager: it runs the others, and each ends with a reason.

On each database: a task that ``os._exit(0)``s, one that raises ``SystemExit``,
one that leaves a process running, one that closes every file descriptor, one
that prints 50 MB, one that returns 20 MB, one that logs 3,000 lines, among
ordinary ones. The caps (``TACHES_MAX_RESULT_SIZE``, ``TACHES_MAX_LOGS``) hold
the same way everywhere; the manager's ``-v`` output stays small.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status, Tache
from tests.app import db, taches
from tests.faults.probes import settled, statuses
from tests.manager_helpers import managers, rows, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TASKS = "tests.faults.tasks"
DRAIN_DEADLINE = 100.0
GONE_DEADLINE = 10.0
#: The manager's -v output for this run: its own lines, not 50 MB of a task's.
MOST_OUTPUT = 1024 * 1024
FINAL = {Status.COMPLETED.value, Status.FAILED.value, Status.INTERRUPTED.value}


def add(method: str, **parametres: object) -> int:
    return taches.add(Tache(method=f"{TASKS}:{method}", parametres=parametres), commit=True)


def dead(pid: int) -> bool:
    """Gone, or a zombie (its parent, the test process as subreaper, reaps it)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def messages(row: dict) -> str:
    return "\n".join(str(entry.get("message")) for entry in row["logs"] or [])


def drain(tmp_path: Path, **settings: str) -> str:
    """One ``--forever`` manager until every task ended; its output."""
    with managers(tmp_path, TACHES_MAX="4", **settings) as group:
        manager = group.start("--forever", "-v")
        wait_for("every task ended", settled, DRAIN_DEADLINE, lambda: f"{statuses()}")
        assert manager.poll() is None, group.output()[-5000:]
        assert group.stop(manager) == 0, group.output()[-5000:]
        return group.output()


@pytest.mark.parametrize("executor", ["fork", "pool"])
def test_hostile_tasks_end_with_a_reason_and_spare_the_others(
    fault_app: Flask, tmp_path: Path, executor: str
) -> None:
    # In the pool, one child runs task after task: what a task leaves, prints or
    # breaks must not reach the next task, nor the manager's output.
    runs, leftovers = tmp_path / "runs.txt", tmp_path / "leftovers.txt"
    with fault_app.app_context():
        ordinary = [add("counted", path=str(runs)) for _ in range(6)]
        hostile = {
            "exit": add("exit_at_once"),
            "system_exit": add("raise_system_exit"),
            "leftover": add("leave_a_process", path=str(leftovers)),
            "close_fds": add("close_every_descriptor"),
            "flood": add("flood_stdout", megabytes=50),
            "logs": add("many_logs", count=3000),
        }
        big = taches.add(Tache(method=f"{TASKS}:big_result", max_attempts=3))
        db.session.remove()
        output = drain(tmp_path, TACHES_EXECUTOR=executor)
        final = rows()
    assert {final[i]["status"] for i in ordinary} == {Status.COMPLETED.value}
    for name, tache_id in hostile.items():
        row = final[tache_id]
        assert row["status"] in FINAL, (name, row["status"])
        if row["status"] != Status.COMPLETED.value:
            assert messages(row), f"{name} ended {row['status']} without a reason"
    assert "exited with code 0" in messages(final[hostile["exit"]])
    (left_pid,) = (int(line) for line in leftovers.read_text().split())
    wait_for("the process the task left is stopped", lambda: dead(left_pid), GONE_DEADLINE)
    assert final[hostile["flood"]]["status"] == Status.COMPLETED.value
    assert len(output) < MOST_OUTPUT, f"{len(output)} bytes of manager output"
    logs = final[hostile["logs"]]["logs"]
    assert len(logs) <= 1000 and "left out (TACHES_MAX_LOGS=1000)" in logs[-1]["message"]
    # Capped, the same on every database: FAILED, saying why, and never run again.
    assert (final[big]["status"], final[big]["attempts"]) == (Status.FAILED.value, 1)
    assert "20.0 MB, over TACHES_MAX_RESULT_SIZE (1.0 MB)" in messages(final[big])


@pytest.mark.dialects("mysql")
def test_an_end_too_big_for_the_server_fails_once(fault_app: Flask, tmp_path: Path) -> None:
    """No cap: 20 MB exceed MariaDB's max_allowed_packet; FAILED naming the size, not re-run."""
    with fault_app.app_context():
        big = taches.add(Tache(method=f"{TASKS}:big_result", max_attempts=3))
        db.session.remove()
        drain(tmp_path, TACHES_MAX_RESULT_SIZE="")
        row = rows()[big]
    assert (row["status"], row["attempts"]) == (Status.FAILED.value, 1)
    assert "could not be stored: result 20.0 MB" in messages(row)


@pytest.mark.dialects("sqlite")
@pytest.mark.parametrize("executor", ["fork", "pool"])
def test_a_setting_lets_a_task_leave_processes_behind(
    fault_app: Flask, tmp_path: Path, executor: str
) -> None:
    leftovers = tmp_path / "leftovers.txt"
    with fault_app.app_context():
        add("leave_a_process", path=str(leftovers))
        db.session.remove()
        # The managers' teardown kills what is left: look before it.
        settings = {"TACHES_KEEP_TASK_PROCESSES": "true", "TACHES_EXECUTOR": executor}
        with managers(tmp_path, **settings) as group:
            manager = group.start("--forever", "-v")
            wait_for("the task ended", settled, DRAIN_DEADLINE, lambda: f"{statuses()}")
            assert group.stop(manager) == 0, group.output()[-5000:]
            (left_pid,) = (int(line) for line in leftovers.read_text().split())
            assert not dead(left_pid), "the task's process was stopped despite the setting"
