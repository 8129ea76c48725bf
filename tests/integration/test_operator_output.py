"""What an operator reads: output into a file or cron mail, ``start -vv``, process titles.

Real ``flask`` processes: ``run -vv`` with its output in a file, managers of each
executor with ``-vv``, and the titles ``ps`` shows, read from ``/proc/PID/cmdline``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import setproctitle  # noqa: F401  (the dev extra has it: the titles below need it)
from flask import Flask

from flask_taches import Status
from flask_taches.config import EXECUTORS
from tests.app import db, taches
from tests.manager_helpers import APP, ROOT, Managers, managers, row, wait_for

pytestmark = pytest.mark.slow

DEADLINE = 60.0
STEPS = 5000
#: The manager's log format: logging's default asctime, then the message.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture
def group(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    with managers(tmp_path) as started:
        yield started


def add(method: str, **parametres: object) -> int:
    tache_id = taches.add(method, parametres=parametres)
    db.session.remove()
    return tache_id


@pytest.mark.dialects("sqlite")
def test_run_vv_into_a_file_throttles_the_progress_lines(group: Managers, tmp_path: Path) -> None:
    tache_id = add("tests.tasks:slow", seconds=0, steps=STEPS)
    output = tmp_path / "mail.txt"
    with open(output, "w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", APP, "taches", "run", str(tache_id), "-vv"],
            cwd=ROOT,
            env=group.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=DEADLINE,
            check=False,
        )

    lines = output.read_text().splitlines()
    assert done.returncode == 0, lines
    progress = [line for line in lines if line.startswith("progress ")]
    # A line per set_progress call was 5,003 lines; now a few, and the last state.
    assert 1 <= len(progress) < 20, progress
    assert progress[-1] == f"progress 100.0% {STEPS}/{STEPS} step {STEPS}"
    assert len(lines) < 30


@pytest.mark.dialects("sqlite")
def test_add_attaches_a_file(group: Managers, tmp_path: Path, db_ctx: Flask) -> None:
    attachment = tmp_path / "rapport.csv"
    attachment.write_text("a,b\n1,2\n")

    added = group.command("add", "tests.tasks:add", "--fichier", str(attachment))

    assert added.returncode == 0, added.stderr
    tache_id = int(added.stdout.strip())
    assert row(tache_id)["fichier"] == "rapport.csv"
    stored = taches.folder() / str(tache_id) / "rapport.csv"
    assert stored.read_text() == "a,b\n1,2\n"
    missing = group.command("add", "tests.tasks:add", "--fichier", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    (line,) = missing.stderr.splitlines()
    assert line.startswith("Error: ") and "nope.csv" in line


@pytest.mark.dialects("sqlite")
@pytest.mark.parametrize("executor", EXECUTORS)
def test_start_vv_prints_every_line_in_one_format_with_the_task_id(
    group: Managers, executor: str
) -> None:
    ids = [add("tests.tasks:slow", seconds=0.1, steps=3) for _ in range(2)]
    manager = group.start("--forever", "--executor", executor, "-vv")
    wait_for(
        "both tasks COMPLETED",
        lambda: all(row(i)["status"] == Status.COMPLETED for i in ids),
        DEADLINE,
        group.output,
    )
    assert group.stop(manager) == 0
    lines = group.output().splitlines()[1:]  # after the helper's header line

    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    for tache_id in ids:
        mine = [line for line in lines if f" task {tache_id}: " in line]
        assert [line.split(f" task {tache_id}: ", 1)[1] for line in mine[1:3]] == [
            "INFO     slow task begins",
            "INFO     slow task ends",
        ], mine
        assert mine[-1].split(": ", 1)[1].startswith("COMPLETED in ")


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


@pytest.mark.dialects("sqlite")
@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_manager_and_each_task_process_have_a_title(group: Managers, executor: str) -> None:
    tache_id = add("tests.manager_tasks:hang")
    manager = group.start("--forever", "--max", "3", "--executor", executor)
    pid = wait_for(
        "the task RUNNING with its pid",
        lambda: row(tache_id)["status"] == Status.RUNNING and row(tache_id)["pid"],
        DEADLINE,
        group.output,
    )

    title = f"flask-taches manager {APP}: max 3, {executor}, all queues"
    wait_for("the manager's title", lambda: cmdline(manager.pid) == title, DEADLINE, group.output)
    task_title = f"flask-taches task {tache_id} tests.manager_tasks:hang"
    wait_for("the task's title", lambda: cmdline(pid) == task_title, DEADLINE, group.output)
    # The title left the environment alone: the cleanup still finds the processes.
    assert {manager.pid, pid} <= set(group.marked_pids())
    assert taches.cancel(tache_id, who="test") is Status.RUNNING
    db.session.remove()
    assert group.stop(manager) == 0
