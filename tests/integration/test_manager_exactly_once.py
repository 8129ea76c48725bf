"""Several managers on one database: each task runs once, the global max holds.

The tasks are added with a ``run_at`` far ahead, the managers started and
waited for, and only then are all tasks made ready at once, so the managers
really race for them. Each task appends ``<id> <RUNNING count it sees>`` to a
shared file.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, rows, wait_for
from tests.manager_tasks import read_lines

pytestmark = pytest.mark.slow

APPEND = "tests.manager_tasks:append_line"
BOOT_DEADLINE = 60.0  # seconds for every manager to be up on a loaded machine
DRAIN_DEADLINE = 180.0  # seconds for the whole run


def race(
    group: Managers,
    out: Path,
    *,
    tasks: int,
    managers_count: int,
    max_running: int,
    args: tuple,
) -> list[int]:
    """Add the tasks, start the managers, release the tasks; the ids added."""
    later = utcnow() + timedelta(hours=1)
    ids = taches.add_many(
        Tache(method=APPEND, parametres={"path": str(out), "pause": 0.01}, run_at=later)
        for _ in range(tasks)
    )
    db.session.remove()
    processes = [
        group.start("--forever", "--max", str(max_running), "-v", *args)
        for _ in range(managers_count)
    ]
    wait_for(
        f"{managers_count} managers up",
        lambda: group.output().count("until stopped") == managers_count,
        BOOT_DEADLINE,
        group.output,
    )
    store = taches.store()
    with store.write() as conn:
        conn.execute(update(taches_table).where(taches_table.c.id.in_(ids)).values(run_at=utcnow()))
        # As add() would: every PostgreSQL manager wakes at once, none waits for its idle poll.
        store.notify_added(conn, "default")
    wait_for(
        f"all {tasks} tasks COMPLETED",
        lambda: sum(r["status"] == Status.COMPLETED for r in rows().values()) == tasks,
        DRAIN_DEADLINE,
        lambda: f"{Counter(r['status'] for r in rows().values())}\n{group.output()}",
    )
    for process in processes:
        assert group.stop(process) == 0
    return ids


def check_exactly_once(group: Managers, out: Path, ids: list[int], max_running: int) -> None:
    lines = [line.split() for line in read_lines(out)]
    ran = Counter(int(tache_id) for tache_id, _ in lines)
    assert [i for i, n in ran.items() if n > 1] == [], "tasks ran more than once"
    assert set(ran) == set(ids)
    seen = max(int(running) for _, running in lines)
    assert seen <= max_running, f"a task saw {seen} RUNNING with --max {max_running}"
    final = rows()
    assert {final[i]["status"] for i in ids} == {Status.COMPLETED.value}
    assert {final[i]["attempts"] for i in ids} == {1}
    output = group.output()
    claims = Counter(int(i) for i in re.findall(r"claimed task (\d+)", output))
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
    claimers = [m for m in output.split("--- manager ")[1:] if re.search(r"claimed task \d+", m)]
    assert len(claimers) >= 2, "only one manager claimed: the managers did not race"


@pytest.mark.parametrize("executor", ["fork", "pool"])
def test_four_managers_run_300_tasks_exactly_once_within_the_max(
    db_ctx: Flask, tmp_path: Path, executor: str
) -> None:
    out = tmp_path / "lines.txt"
    with managers(tmp_path) as group:
        args = ("--executor", executor)
        ids = race(group, out, tasks=300, managers_count=4, max_running=4, args=args)
        check_exactly_once(group, out, ids, max_running=4)


def test_two_subprocess_managers_run_each_task_once(db_ctx: Flask, tmp_path: Path) -> None:
    out = tmp_path / "lines.txt"
    with managers(tmp_path) as group:
        ids = race(
            group,
            out,
            tasks=10,
            managers_count=2,
            max_running=3,
            args=("--executor", "subprocess"),
        )
        check_exactly_once(group, out, ids, max_running=3)


@pytest.mark.parametrize(
    ("managers_count", "max_running", "concurrency", "most"),
    [
        (2, 4, 1, 2),  # one slot each under --max 4: never more than 2 RUNNING
        (3, 3, 2, 3),  # two slots each (6 in all) under --max 3: never more than 3
    ],
)
def test_managers_run_within_their_concurrency_and_the_global_max(
    db_ctx: Flask,
    tmp_path: Path,
    managers_count: int,
    max_running: int,
    concurrency: int,
    most: int,
) -> None:
    out = tmp_path / "lines.txt"
    with managers(tmp_path) as group:
        args = ("--concurrency", str(concurrency))
        ids = race(
            group, out, tasks=40, managers_count=managers_count, max_running=max_running, args=args
        )
        check_exactly_once(group, out, ids, max_running=most)
