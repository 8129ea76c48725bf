"""What an operator runs: the managers registry and ``check``, real processes, every database.

Managers are real ``flask taches start --forever`` processes; ``managers`` and
``check`` are real ``flask`` commands reading the same database.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_taches.models import managers_table
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, wait_for

pytestmark = pytest.mark.slow

DEADLINE = 30.0  # seconds any expected state gets to appear (a loaded 2-core machine)


@pytest.fixture
def group(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    with managers(tmp_path) as started:
        yield started


def listed(group: Managers) -> list[dict[str, Any]]:
    result = group.command("managers", "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def listed_pids(group: Managers) -> set[int]:
    return {manager["pid"] for manager in listed(group)}


def registry_rows() -> int:
    with taches.store().read() as conn:
        return int(conn.execute(select(func.count()).select_from(managers_table)).scalar_one())


def test_two_managers_are_listed_and_a_killed_one_goes_stale(group: Managers) -> None:
    first = group.start("--forever", "--max", "3", "--queue", "mail", "--queue", "pdf")
    second = group.start("--forever", "--executor", "subprocess")
    both = {first.pid, second.pid}
    wait_for("both managers listed", lambda: listed_pids(group) == both, DEADLINE, group.output)
    by_pid = {manager["pid"]: manager for manager in listed(group)}
    assert by_pid[first.pid]["queues"] == ["mail", "pdf"]
    assert (by_pid[first.pid]["max"], by_pid[second.pid]["executor"]) == (3, "subprocess")
    for manager in by_pid.values():
        assert manager["running"] == 0
        assert manager["hostname"] and manager["started_at"] <= manager["seen_at"]

    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    # TACHES_HEARTBEAT_TIMEOUT (3 s here) without a beat: no longer listed, then pruned.
    wait_for("the killed one unlisted", lambda: listed_pids(group) == {second.pid}, DEADLINE)
    wait_for("its row pruned by the other", lambda: registry_rows() == 1, DEADLINE, group.output)

    assert group.stop(second) == 0
    assert registry_rows() == 0  # a clean exit leaves
    assert group.command("managers").stdout == "no live manager\n"


def test_a_manager_reports_its_running_tasks(group: Managers, tmp_path: Path) -> None:
    taches.add(
        "tests.manager_tasks:sleep_then_append",
        parametres={"path": str(tmp_path / "o"), "seconds": 30},
    )
    db.session.remove()
    process = group.start("--forever")
    wait_for(
        "one running task reported",
        lambda: [m["running"] for m in listed(group)] == [1],
        DEADLINE,
        group.output,
    )
    text = group.command("managers").stdout.splitlines()
    assert text[0].split()[:2] == ["host", "pid"]
    assert str(process.pid) in text[1] and "1/5" in text[1]


def test_check_fails_without_a_manager_and_passes_with_one(group: Managers) -> None:
    alone = group.command("check")
    assert alone.returncode == 1
    assert alone.stdout == ""
    assert alone.stderr.startswith("no live manager") and alone.stderr.count("\n") == 1

    group.start("--forever")
    wait_for("a live manager", lambda: listed(group), DEADLINE, group.output)
    passed = group.command("check")
    assert (passed.returncode, passed.stdout, passed.stderr) == (0, "ok\n", "")


def test_check_without_the_tables_says_how_to_create_them(group: Managers) -> None:
    db.drop_all()
    try:
        result = group.command("check")
    finally:
        db.create_all()  # for the teardown's look at the rows
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "'taches_managers'" in result.stderr and "flask taches init-db" in result.stderr
