"""Deploys under a running ``--forever`` manager: new code is found, ``SIGHUP`` re-executes.

The task code lives in a package written into ``tmp_path`` (``deployed_shop``),
so the test can change its files while real ``flask taches start`` processes
run, as a deploy does.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from tests.app import EXTRA_MODULES_VARIABLE, db, taches
from tests.manager_helpers import Managers, managers, messages, row, wait_for
from tests.manager_tasks import read_lines

pytestmark = pytest.mark.slow

DEADLINE = 60.0  # seconds any expected state gets to appear (a loaded 2-core machine)
PACKAGE = "deployed_shop"

#: The task module as the first release ships it; a deploy appends to it or rewrites it.
SERVICES = """
import os
import time

VERSION = "{version}"


def work(path, tache, seconds=0.0):
    time.sleep(seconds)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{{tache.id}} {{VERSION}} {{os.getpid()}}\\n".encode())
    os.close(fd)
"""

#: What the deploy adds to the module: a function and a class the manager never saw.
ADDED = """

def newsletter(path, tache):
    work(path, tache)


class Newsletter:
    def send(self, path, tache):
        work(path, tache)
"""


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The deployed package's folder, importable here and by the managers."""
    root = tmp_path / "code"
    (root / PACKAGE).mkdir(parents=True)
    (root / PACKAGE / "__init__.py").write_text("")
    deploy(root, SERVICES.format(version="v1"))
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]


@pytest.fixture
def executor() -> str:
    """The managers' executor; a test parametrizes it to run on others."""
    return "fork"


@pytest.fixture
def group(db_ctx: Flask, tmp_path: Path, code: Path, executor: str) -> Iterator[Managers]:
    settings = {EXTRA_MODULES_VARIABLE: PACKAGE, "TACHES_EXECUTOR": executor}
    with managers(tmp_path, **settings) as started:
        started.env["PYTHONPATH"] = os.pathsep.join([started.env["PYTHONPATH"], str(code)])
        yield started


def deploy(root: Path, text: str, *, append: bool = False) -> None:
    """Write the services module as a deploy would (a new file's mtime and size)."""
    path = root / PACKAGE / "services.py"
    if append:
        text = path.read_text() + text
    path.write_text(textwrap.dedent(text))


def add_here(method: str, **parametres: object) -> int:
    tache_id = taches.add(f"{PACKAGE}.services:{method}", parametres=parametres)
    db.session.remove()
    return tache_id


def added_by_cli(group: Managers, method: str, out: Path) -> int:
    """``flask taches add`` in a process of its own: what a freshly deployed web app does."""
    result = group.command("add", f"{PACKAGE}.services:{method}", "-p", f"path={out}")
    assert result.returncode == 0, result.stdout + result.stderr
    return int(result.stdout.split()[-1])


def new_image_runs(group: Managers, pid: int) -> bool:
    """The re-executed manager's loop has started (its signal handlers are in place)."""
    output = group.output()
    handed_over = output.find("re-executed: ")
    return handed_over >= 0 and f"manager {pid} on " in output[handed_over:]


def completed(*ids: int) -> bool:
    return all(row(i)["status"] == Status.COMPLETED for i in ids)


def written(out: Path) -> dict[int, tuple[str, int]]:
    """``{task id: (code version, pid)}`` from the lines the tasks wrote; each id once."""
    lines = [line.split() for line in read_lines(out)]
    ids = [int(tache_id) for tache_id, _, _ in lines]
    assert len(ids) == len(set(ids)), f"a task ran twice: {lines}"
    return {int(tache_id): (version, int(pid)) for tache_id, version, pid in lines}


@pytest.mark.dialects("sqlite")
@pytest.mark.taches_config(TACHES_ALLOWED_MODULES=["tests", PACKAGE])
def test_a_function_deployed_after_the_manager_started_is_found(
    group: Managers, code: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    group.start("--forever", "-v")
    first = added_by_cli(group, "work", out)
    wait_for("the first task COMPLETED", lambda: completed(first), DEADLINE, group.output)

    # The manager imported the module for the first task; the deploy adds to its file.
    deploy(code, ADDED, append=True)
    function = added_by_cli(group, "newsletter", out)
    method = added_by_cli(group, "Newsletter.send", out)

    wait_for(
        "the deployed function and method COMPLETED",
        lambda: completed(function, method),
        DEADLINE,
        lambda: group.output() + f"\n{row(function)}\n{row(method)}",
    )
    assert set(written(out)) == {first, function, method}
    notice = f"found after importing {PACKAGE}.services afresh"
    assert any(notice in m for m in messages(function)), messages(function)
    assert not any(notice in m for m in messages(first))


@pytest.mark.taches_config(TACHES_ALLOWED_MODULES=["tests", PACKAGE])
@pytest.mark.parametrize("executor", ["fork", "pool"])
def test_sighup_re_executes_the_manager_and_no_task_is_lost_or_run_twice(
    group: Managers, code: Path, tmp_path: Path, executor: str
) -> None:
    out = tmp_path / "out.txt"
    manager = group.start("--forever", "--max", "4", "-v")
    long = [add_here("work", path=str(out), seconds=4.0) for _ in range(2)]
    wait_for(
        "both long tasks RUNNING with their pid",
        lambda: all(row(i)["status"] == Status.RUNNING and row(i)["pid"] for i in long),
        DEADLINE,
        group.output,
    )
    task_pids = {i: row(i)["pid"] for i in long}

    deploy(code, SERVICES.format(version="v2"))
    manager.send_signal(signal.SIGHUP)
    wait_for("the new image", lambda: "re-executed: 2 task" in group.output(), DEADLINE)
    short = [add_here("work", path=str(out)) for _ in range(6)]

    wait_for("every task COMPLETED", lambda: completed(*long, *short), DEADLINE * 2, group.output)
    ran = written(out)
    assert set(ran) == {*long, *short}
    # The old image's children ran on past the exec with the old code, in their process.
    assert {i: ran[i] for i in long} == {i: ("v1", task_pids[i]) for i in long}
    # The new image is the same process, and runs the deployed code.
    assert {ran[i][0] for i in short} == {"v2"}
    assert manager.poll() is None, group.output()
    assert all(row(i)["attempts"] == 1 for i in (*long, *short))
    assert "SIGHUP received: no more claims; re-executing, 2 running task(s)" in group.output()
    # The new image reaped the old one's children: no zombie is left behind.
    wait_for(
        "the old children reaped",
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in task_pids.values()),
        DEADLINE,
        group.output,
    )

    assert group.stop(manager) == 0, group.output()


@pytest.mark.dialects("sqlite")
def test_after_sighup_a_stop_also_stops_the_previous_images_tasks(group: Managers) -> None:
    group.env["TACHES_DRAIN_GRACE"] = "1"
    tache_id = taches.add("tests.manager_tasks:hang")
    db.session.remove()
    manager = group.start("--forever", "-v")
    pid = wait_for(
        "the task RUNNING with its pid",
        lambda: row(tache_id)["status"] == Status.RUNNING and row(tache_id)["pid"],
        DEADLINE,
        group.output,
    )
    manager.send_signal(signal.SIGHUP)
    wait_for("the exec", lambda: "re-executing manager" in group.output(), DEADLINE)

    # Sent while the new image starts: it waits for its handlers (the mask survives
    # the exec), then the new image drains and stops the task it inherited.
    assert group.stop(manager, timeout=DEADLINE) == 0, group.output()
    assert new_image_runs(group, manager.pid), group.output()

    assert not Path(f"/proc/{pid}").exists(), "stopped, and reaped by the manager"
    ended = wait_for(
        "the task's end recorded",
        lambda: row(tache_id)["status"] != Status.RUNNING and row(tache_id),
        DEADLINE,
        group.output,
    )
    assert ended["status"] in (Status.INTERRUPTED, Status.TO_RUN), ended
