"""The manager as users run it: real ``flask taches start`` processes, on every database.

Each test starts managers with small timings (``tests.manager_helpers``),
adds tasks from this process, and polls the database with a deadline; a
missed deadline fails with the managers' output.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, messages, row, rows, wait_for
from tests.manager_tasks import read_lines

pytestmark = pytest.mark.slow

TASKS = "tests.manager_tasks"
DEADLINE = 30.0  # seconds any expected state gets to appear (a loaded 2-core machine)


@pytest.fixture(params=["fork", "pool"])
def executor(request: pytest.FixtureRequest) -> str:
    """Every guarantee holds with a fresh fork per task and with the pool's children."""
    return str(request.param)


@pytest.fixture
def group(db_ctx: Flask, tmp_path: Path, executor: str) -> Iterator[Managers]:
    with managers(tmp_path, TACHES_EXECUTOR=executor) as started:
        yield started


def add(method: str, **options: object) -> int:
    tache_id = taches.add(f"{TASKS}:{method}", **options)
    db.session.remove()
    return tache_id


def status_is(tache_id: int, *statuses: Status) -> bool:
    return row(tache_id)["status"] in statuses


def started_with_pid(tache_id: int) -> int | None:
    found = row(tache_id)
    return found["pid"] if found["status"] == Status.RUNNING and found["pid"] else None


@pytest.mark.parametrize("executor", ["fork", "pool", "subprocess"])
def test_a_chain_of_three_runs_in_order(group: Managers, tmp_path: Path, executor: str) -> None:
    out = str(tmp_path / "chain.txt")
    ids = taches.chain(*(Tache(method=f"{TASKS}:record", parametres={"path": out}) for _ in "abc"))
    db.session.remove()
    group.start("--forever", "--executor", executor, "-v")
    wait_for(
        "the chain COMPLETED",
        lambda: all(status_is(i, Status.COMPLETED) for i in ids),
        DEADLINE * 2,
        group.output,
    )
    assert read_lines(out) == [str(i) for i in ids]
    assert all(row(i)["attempts"] == 1 for i in ids)


def test_kill_9_of_a_task_interrupts_it_then_retries(group: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    tache_id = add("sleep_then_append", parametres={"path": out, "seconds": 1.0}, max_attempts=2)
    group.start("--forever", "-v")
    pid = wait_for("the task RUNNING in its process", lambda: started_with_pid(tache_id), DEADLINE)
    os.kill(pid, signal.SIGKILL)
    heartbeat_timeout = float(group.env["TACHES_HEARTBEAT_TIMEOUT"])
    # Its manager sees its child die: no need to wait for the heartbeat to go stale.
    wait_for(
        "the killed attempt recorded as interrupted",
        lambda: any("signal 9" in m for m in messages(tache_id)),
        heartbeat_timeout,
        group.output,
    )
    wait_for(
        "the retry COMPLETED",
        lambda: status_is(tache_id, Status.COMPLETED),
        DEADLINE,
        group.output,
    )
    final = row(tache_id)
    assert final["attempts"] == 2
    assert final["pid"] != pid
    assert any("retrying" in m for m in messages(tache_id))
    assert read_lines(out) == [f"{tache_id} 2"]


def test_kill_9_of_the_manager_leaves_its_tasks_running_to_their_end(
    group: Managers, tmp_path: Path
) -> None:
    out = str(tmp_path / "out.txt")
    ids = [add("sleep_then_append", parametres={"path": out, "seconds": 1.5}) for _ in range(3)]
    manager = group.start("--forever", "-v")
    pids = [
        wait_for(f"task {i} RUNNING", lambda i=i: started_with_pid(i), DEADLINE, group.output)
        for i in ids
    ]
    manager.kill()
    manager.wait()
    wait_for(
        "the orphaned tasks COMPLETED",
        lambda: all(status_is(i, Status.COMPLETED) for i in ids),
        DEADLINE,
        group.output,
    )
    assert manager.pid not in pids
    assert sorted(read_lines(out)) == sorted(f"{i} 1" for i in ids)
    assert all(row(i)["ended_at"] is not None for i in ids)


def test_a_task_whose_manager_and_process_died_is_rescued_by_another_manager(
    db_ctx: Flask, tmp_path: Path, executor: str
) -> None:
    # A heartbeat timeout longer than the wait: only the pid check can rescue it in time,
    # however long the second manager takes to start on a loaded machine.
    with managers(tmp_path, TACHES_EXECUTOR=executor, TACHES_HEARTBEAT_TIMEOUT="120") as group:
        tache_id = add("hang", max_attempts=2)
        first = group.start("--forever", "-v")
        pid = wait_for(
            "the task RUNNING", lambda: started_with_pid(tache_id), DEADLINE, group.output
        )
        first.kill()
        first.wait()
        os.kill(pid, signal.SIGKILL)
        group.start("--forever", "-v")
        # Same host, pid gone: rescued at once, not after the heartbeat timeout.
        wait_for(
            "the dead task rescued and retried",
            lambda: row(tache_id)["attempts"] == 2,
            DEADLINE,
            group.output,
        )
        assert any(f"process {pid}" in m and "gone" in m for m in messages(tache_id))
        taches.cancel(tache_id, who="teardown")


def test_a_hanging_task_hits_its_timeout(group: Managers) -> None:
    hanging = add("hang", timeout=1)
    stuck = add("stuck_in_c", timeout=1)
    group.start("--forever", "-v")
    wait_for(
        "both tasks FAILED",
        lambda: status_is(hanging, Status.FAILED) and status_is(stuck, Status.FAILED),
        DEADLINE,
        group.output,
    )
    # The runner stops a task that still runs Python; the manager kills one stuck in C.
    assert any("timeout after 1 s" in m for m in messages(hanging))
    assert any("timeout after 1 s" in m and "stopped by the manager" in m for m in messages(stuck))


def test_a_running_task_is_cancelled_from_another_process(group: Managers) -> None:
    tache_id = add("hang")
    stuck = add("stuck_in_c")
    group.start("--forever", "-v")
    for running in (tache_id, stuck):
        wait_for("the task RUNNING", lambda i=running: started_with_pid(i), DEADLINE, group.output)
    assert taches.cancel(tache_id, who="alice") is Status.RUNNING
    assert taches.cancel(stuck, who="bob") is Status.RUNNING
    wait_for(
        "both tasks CANCELLED",
        lambda: status_is(tache_id, Status.CANCELLED) and status_is(stuck, Status.CANCELLED),
        DEADLINE,
        group.output,
    )
    # Its own process stops a task that runs Python; the manager one stuck in C.
    assert any("cancelled by alice" in m for m in messages(tache_id))
    assert any("cancelled by bob" in m and "stopped by the manager" in m for m in messages(stuck))


def test_a_scheduled_task_does_not_start_early(group: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    now = add("record", parametres={"path": out})
    group.start("--forever", "-v")
    # Added once the manager is up and claiming: on a loaded machine its start
    # alone can take longer than the delay.
    wait_for("the ready task COMPLETED", lambda: status_is(now, Status.COMPLETED), DEADLINE)
    run_at = utcnow() + timedelta(seconds=1.5)
    later = add("record", parametres={"path": out}, run_at=run_at)
    wait_for(
        "the scheduled task COMPLETED",
        lambda: status_is(later, Status.COMPLETED),
        DEADLINE,
        group.output,
    )
    assert row(later)["started_at"] >= run_at
    assert read_lines(out) == [str(now), str(later)]


def test_priorities_are_respected(group: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    priorities = [0, 5, 1, 5, -2, 3]
    ids = [add("record", parametres={"path": out}, priority=p) for p in priorities]
    group.start("--forever", "--max", "1", "-v")
    wait_for(
        "all tasks COMPLETED",
        lambda: all(status_is(i, Status.COMPLETED) for i in ids),
        DEADLINE,
        group.output,
    )
    expected = [
        i
        for _, i in sorted(zip(priorities, ids, strict=True), key=lambda pair: (-pair[0], pair[1]))
    ]
    assert read_lines(out) == [str(i) for i in expected]


def test_sigterm_on_forever_drains_cleanly(group: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    running = [add("sleep_then_append", parametres={"path": out, "seconds": 1.0}) for _ in "ab"]
    waiting = [add("record", parametres={"path": out}) for _ in "abc"]
    manager = group.start("--forever", "--max", "2", "-v")
    for tache_id in running:
        wait_for(f"task {tache_id} RUNNING", lambda i=tache_id: started_with_pid(i), DEADLINE)
    assert group.stop(manager) == 0
    after = rows()
    assert [after[i]["status"] for i in running] == [Status.COMPLETED] * 2
    assert [after[i]["status"] for i in waiting] == [Status.TO_RUN] * 3
    assert "SIGTERM received" in group.output()


def test_sigterm_stops_tasks_that_outlive_the_drain_grace(
    db_ctx: Flask, tmp_path: Path, executor: str
) -> None:
    with managers(tmp_path, TACHES_DRAIN_GRACE="0.5", TACHES_EXECUTOR=executor) as group:
        tache_id = add("hang")
        manager = group.start("--forever", "-v")
        wait_for("the task RUNNING", lambda: started_with_pid(tache_id), DEADLINE, group.output)
        assert group.stop(manager) == 0
        assert row(tache_id)["status"] == Status.INTERRUPTED
        assert any("SIGTERM" in m for m in messages(tache_id))


def test_crashing_children_never_take_the_manager_down(group: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    crash = add("segfault", priority=2)
    leave = add("exit_abruptly", parametres={"code": 7}, priority=1)
    fine = add("record", parametres={"path": out})
    manager = group.start("--forever", "--max", "1", "-v")
    wait_for("the last task COMPLETED", lambda: status_is(fine, Status.COMPLETED), DEADLINE)
    assert manager.poll() is None, group.output()
    assert status_is(crash, Status.INTERRUPTED) and status_is(leave, Status.INTERRUPTED)
    assert any("signal 11 (SIGSEGV)" in m for m in messages(crash))
    assert any("exited with code 7" in m for m in messages(leave))
    assert group.stop(manager) == 0


@pytest.mark.dialects("postgresql")  # LISTEN/NOTIFY is PostgreSQL's
def test_a_broken_listen_connection_falls_back_to_polling(group: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    group.start("--forever", "-v")
    listening = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
    )

    def listener_pid() -> int | None:
        with db.engine.connect() as conn:
            return conn.execute(text(listening)).scalar()

    pid = wait_for("the manager listening", listener_pid, DEADLINE, group.output)
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_for(
        "the manager noticing",
        lambda: "listening for new tasks failed" in group.output(),
        DEADLINE,
        group.output,
    )
    tache_id = add("record", parametres={"path": out})
    wait_for("the task COMPLETED", lambda: status_is(tache_id, Status.COMPLETED), DEADLINE)
    assert read_lines(out) == [str(tache_id)]
