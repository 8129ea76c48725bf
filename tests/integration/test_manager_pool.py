"""What only the pool executor does: its children are reused, recycled and replaced.

Which child ran a task is what the task itself wrote (``record_pid``), or the
row's ``pid`` while it runs. The guarantees it shares with the fork executor
are in ``test_manager.py``, which runs on both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from flask_taches.processes import pid_alive
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, row, wait_for
from tests.manager_tasks import read_lines

pytestmark = pytest.mark.slow

TASKS = "tests.manager_tasks"
DEADLINE = 30.0  # seconds any expected state gets to appear (a loaded 2-core machine)


@pytest.fixture
def pool(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    with managers(tmp_path, TACHES_EXECUTOR="pool") as started:
        yield started


def add(method: str, **options: object) -> int:
    tache_id = taches.add(f"{TASKS}:{method}", **options)
    db.session.remove()
    return tache_id


def ended(*ids: int) -> bool:
    return all(row(i)["ended_at"] is not None for i in ids)


def run_pids(path: Path) -> dict[int, int]:
    """Which process (which child of the pool) each ``record_pid`` task ran in."""
    return {int(i): int(pid) for i, pid in (line.split() for line in read_lines(path))}


def running_pid(tache_id: int) -> int | None:
    found = row(tache_id)
    return found["pid"] if found["status"] == Status.RUNNING and found["pid"] else None


def gone(pid: int) -> bool:
    return not pid_alive(pid)


def test_one_child_runs_tasks_one_after_another_and_is_replaced_after_its_quota(
    db_ctx: Flask, tmp_path: Path
) -> None:
    with managers(tmp_path, TACHES_EXECUTOR="pool", TACHES_MAX_TASKS_PER_CHILD="3") as group:
        out = tmp_path / "pids.txt"
        ids = [add("record_pid", parametres={"path": str(out)}, priority=-i) for i in range(7)]
        manager = group.start("--forever", "--max", "1", "-v")
        wait_for("all tasks ended", lambda: ended(*ids), DEADLINE, group.output)
        ran_in = run_pids(out)
        pids = [ran_in[i] for i in ids]
        assert {row(i)["status"] for i in ids} == {Status.COMPLETED.value}
        first, second, third = pids[0], pids[3], pids[6]
        assert pids == [first] * 3 + [second] * 3 + [third], pids
        assert len({first, second, third}) == 3
        assert manager.pid not in pids  # the manager never runs a task itself
        wait_for("the retired children gone", lambda: gone(first) and gone(second), DEADLINE)
        assert group.stop(manager) == 0
        wait_for("the last child gone with its manager", lambda: gone(third), DEADLINE)


def test_a_child_whose_memory_grew_past_the_limit_is_replaced(
    db_ctx: Flask, tmp_path: Path
) -> None:
    with managers(tmp_path, TACHES_EXECUTOR="pool", TACHES_MAX_MEMORY_PER_CHILD="20") as group:
        out = tmp_path / "pids.txt"
        path = {"path": str(out)}
        small = add("record_pid", parametres=path, priority=3)
        leak = add("grow", parametres={**path, "megabytes": 40}, priority=2)
        after = add("record_pid", parametres=path, priority=1)
        group.start("--forever", "--max", "1", "-v")
        wait_for("all tasks ended", lambda: ended(small, leak, after), DEADLINE, group.output)
        assert row(leak)["status"] == Status.COMPLETED
        ran_in = run_pids(out)
        assert ran_in[small] == ran_in[leak] != ran_in[after]
        wait_for("the grown child gone", lambda: gone(ran_in[leak]), DEADLINE, group.output)


def test_a_crashing_task_replaces_only_its_own_child(pool: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    long = add("sleep_then_append", parametres={"path": out, "seconds": 2.0}, priority=2)
    crash = add("segfault", priority=1)
    pool.start("--forever", "--max", "2", "-v")
    survivor = wait_for("the long task RUNNING", lambda: running_pid(long), DEADLINE, pool.output)
    wait_for("the crash seen", lambda: row(crash)["status"] == Status.INTERRUPTED, DEADLINE)
    crashed = int(re.findall(r"process (\d+) was killed by signal 11", pool.output())[0])
    assert crashed != survivor
    assert pid_alive(survivor)
    pids = tmp_path / "pids.txt"
    later = add("record_pid", parametres={"path": str(pids)})
    wait_for("the long task and a later one", lambda: ended(long, later), DEADLINE, pool.output)
    assert row(long)["status"] == Status.COMPLETED and row(long)["pid"] == survivor
    assert row(later)["status"] == Status.COMPLETED and run_pids(pids)[later] != crashed
    assert pid_alive(survivor)  # back in the pool, idle


def test_a_cancel_and_a_timeout_stop_only_their_own_children(
    pool: Managers, tmp_path: Path
) -> None:
    out = str(tmp_path / "out.txt")
    long = add("sleep_then_append", parametres={"path": out, "seconds": 3.0}, priority=3)
    cancelled = add("hang", priority=2)
    timed_out = add("hang", timeout=1, priority=1)
    pool.start("--forever", "--max", "3", "-v")
    pids = {
        i: wait_for(f"task {i} RUNNING", lambda i=i: running_pid(i), DEADLINE, pool.output)
        for i in (long, cancelled, timed_out)
    }
    assert taches.cancel(cancelled, who="alice") is Status.RUNNING
    wait_for(
        "the cancel and the timeout",
        lambda: (
            row(cancelled)["status"] == Status.CANCELLED
            and row(timed_out)["status"] == Status.FAILED
        ),
        DEADLINE,
        pool.output,
    )
    # A stopped task's child leaves: what the task left behind meets no other task.
    wait_for(
        "their children gone", lambda: gone(pids[cancelled]) and gone(pids[timed_out]), DEADLINE
    )
    assert row(long)["status"] == Status.RUNNING and pid_alive(pids[long])
    ran_in = tmp_path / "pids.txt"
    later = add("record_pid", parametres={"path": str(ran_in)})
    wait_for("the long task and a later one", lambda: ended(long, later), DEADLINE, pool.output)
    assert row(long)["status"] == Status.COMPLETED
    assert run_pids(ran_in)[later] not in (pids[cancelled], pids[timed_out])


def test_kill_9_of_the_manager_lets_each_child_finish_its_task_then_leave(
    pool: Managers, tmp_path: Path
) -> None:
    out = str(tmp_path / "out.txt")
    ran_in = tmp_path / "pids.txt"
    warm = [add("record_pid", parametres={"path": str(ran_in)}, priority=5) for _ in range(2)]
    busy = add("sleep_then_append", parametres={"path": out, "seconds": 1.5})
    manager = pool.start("--forever", "--max", "3", "-v")
    wait_for("the first tasks ended", lambda: ended(*warm), DEADLINE, pool.output)
    busy_pid = wait_for("the task RUNNING", lambda: running_pid(busy), DEADLINE, pool.output)
    children = set(run_pids(ran_in).values()) | {busy_pid}
    manager.kill()
    manager.wait()
    wait_for("the task COMPLETED", lambda: row(busy)["status"] == Status.COMPLETED, DEADLINE)
    # Idle or done, no child waits for work that no manager will send.
    wait_for("every child gone", lambda: all(gone(pid) for pid in children), DEADLINE)


@pytest.mark.dialects("sqlite")  # elsewhere its manager claims for it (cheap_single_claims)
def test_a_child_claims_its_next_task_itself_and_its_manager_supervises_it(
    pool: Managers, tmp_path: Path
) -> None:
    """In the manager's claim order, and a crash in that task is seen by the manager."""
    out = tmp_path / "pids.txt"
    first = add("record_pid", parametres={"path": str(out)}, priority=3)
    second = add("record_pid", parametres={"path": str(out)}, priority=2)
    crash = add("segfault", priority=1)
    pool.start("--forever", "--max", "1", "-v")
    wait_for("the crash seen", lambda: row(crash)["status"] == Status.INTERRUPTED, DEADLINE)
    child = run_pids(out)[first]
    assert run_pids(out) == {first: child, second: child}
    output = pool.output()
    for tache_id in (second, crash):
        assert f"claimed task {tache_id} (attempt 1) by process {child} after its last" in output
    assert f"process {child} was killed by signal 11" in output
    assert f"process {child} was killed by signal 11" in row(crash)["logs"][-1]["message"]


def test_a_child_whose_manager_died_claims_nothing_more(pool: Managers, tmp_path: Path) -> None:
    out = str(tmp_path / "out.txt")
    busy = add("sleep_then_append", parametres={"path": out, "seconds": 1.5}, priority=2)
    waiting = add("record", parametres={"path": out}, priority=1)
    manager = pool.start("--forever", "--max", "1", "-v")
    busy_pid = wait_for("the task RUNNING", lambda: running_pid(busy), DEADLINE, pool.output)
    manager.kill()
    manager.wait()
    wait_for("the task COMPLETED", lambda: row(busy)["status"] == Status.COMPLETED, DEADLINE)
    wait_for("its child gone", lambda: gone(busy_pid), DEADLINE)
    assert row(waiting)["status"] == Status.TO_RUN
