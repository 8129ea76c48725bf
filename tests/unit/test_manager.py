"""The manager's parts, and one in-process run of its loop on every database."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from flask_taches import Status
from flask_taches.cli.manager import format_stats
from flask_taches.cli.manager import manager_log_level as log_level
from flask_taches.clock import utcnow
from flask_taches.exceptions import ConfigurationError
from flask_taches.exit_codes import EXIT_COMPLETED, EXIT_ENDED, EXIT_NOT_RUN, exit_code
from flask_taches.models import taches_table
from flask_taches.processes import pid_alive, started_near
from flask_taches.store import AttemptState, Claimed
from flask_taches.worker import Manager, ManagerOptions
from flask_taches.worker.endings import AttemptEnd, how_they_ended
from flask_taches.worker.executors import Child, EndHint, SubprocessExecutor, describe_exit
from flask_taches.worker.executors.end_hints import EndHintBoard, HintSlot
from flask_taches.worker.executors.pool_pipes import (
    TaskResult,
    post_result,
    read_result,
    receive_task,
    send_task,
)
from flask_taches.worker.orphans import kill_overdue_orphans
from flask_taches.worker.supervision import Phase, SupervisedChild
from tests.app import db, taches
from tests.manager_helpers import rows

NOOP = "tests.manager_tasks:noop"


def test_options_come_from_the_settings_then_the_command_line(app: Flask) -> None:
    config = dict(app.config, TACHES_MAX=7, TACHES_QUEUES=["mail"], TACHES_SLEEP=2.0)
    options = ManagerOptions.from_config(config, loop=3, max_running=None, executor="subprocess")
    assert (options.loop, options.sleep, options.max_running) == (3, 2.0, 7)
    assert (options.queues, options.executor, options.forever) == (("mail",), "subprocess", False)
    assert options.heartbeat_timeout == app.config["TACHES_HEARTBEAT_TIMEOUT"]
    assert (options.concurrency, options.slots) == (None, 7)


def test_a_managers_slots_are_its_concurrency_within_the_global_max(app: Flask) -> None:
    config = dict(app.config, TACHES_MAX=8, TACHES_CONCURRENCY=2)
    assert ManagerOptions.from_config(config).slots == 2
    assert ManagerOptions.from_config(config, concurrency=3).slots == 3
    assert ManagerOptions.from_config(config, max_running=1).slots == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"executor": "thread"}, "executor 'thread': use one of 'fork', 'pool', 'subprocess'"),
        ({"loop": 0}, "at least 1"),
        ({"max_tasks_per_child": 0}, "TACHES_MAX_TASKS_PER_CHILD must be at least 1"),
        ({"max_memory_per_child": 0}, "TACHES_MAX_MEMORY_PER_CHILD must be at least 1"),
        ({"concurrency": 0}, "TACHES_CONCURRENCY\\) must be at least 1"),
    ],
)
def test_bad_options_are_refused(app: Flask, override: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ManagerOptions.from_config(app.config, **override)


def test_rescue_runs_at_least_every_heartbeat() -> None:
    assert ManagerOptions(heartbeat=5.0, sleep=6.0).check_every == 5.0
    assert ManagerOptions(heartbeat=5.0, sleep=0.5).check_every == 0.5
    assert ManagerOptions(heartbeat=0.0, sleep=0.0).check_every == 0.05


def test_exit_codes_and_their_description() -> None:
    assert exit_code(Status.COMPLETED) == EXIT_COMPLETED
    assert exit_code(Status.FAILED) == exit_code(Status.TO_RUN) == EXIT_ENDED
    assert exit_code(None) == EXIT_NOT_RUN
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"


def test_pid_alive_tells_running_dead_and_zombie_processes() -> None:
    assert pid_alive(os.getpid())
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while pid_alive(pid):  # a zombie until reaped: dead all the same
        assert time.monotonic() < deadline, "the child neither exited nor showed as a zombie"
        time.sleep(0.01)
    os.waitpid(pid, 0)
    assert not pid_alive(pid)


def test_the_earliest_stop_decision_stands() -> None:
    watched = SupervisedChild(child=None)  # type: ignore[arg-type]  (deciding never looks at it)
    watched.decide_stop(10.0, "timeout", Status.FAILED)
    watched.decide_stop(20.0, "cancel", Status.CANCELLED)
    assert watched.deadline is not None
    assert (watched.deadline.at, watched.deadline.status) == (10.0, Status.FAILED)
    watched.decide_stop(5.0, "gone")
    assert (watched.deadline.at, watched.deadline.message) == (5.0, "gone")


def test_a_stop_goes_through_its_phases_in_order() -> None:
    """SIGTERM when the deadline comes, SIGKILL a grace later; once begun, a stop stands."""
    watched = SupervisedChild(child=None)  # type: ignore[arg-type]  (advancing never looks at it)
    assert watched.phase is Phase.RUNNING and watched.next_due() is None
    watched.decide_stop(10.0, "timeout", Status.FAILED, record_first=True)
    assert watched.phase is Phase.STOP_DECIDED and watched.next_due() == 10.0
    assert watched.advance(9.0, kill_grace=2.0) is None
    term = watched.advance(10.0, kill_grace=2.0)
    assert term is not None and (term.signum, term.why) == (signal.SIGTERM, "timeout")
    assert term.record_first is not None and term.record_first.status is Status.FAILED
    assert watched.phase is Phase.TERMINATED and watched.next_due() == 12.0
    watched.decide_stop(0.0, "too late", Status.CANCELLED)
    assert watched.verdict is not None and watched.verdict.status is Status.FAILED
    assert watched.advance(11.0, kill_grace=2.0) is None
    kill = watched.advance(12.0, kill_grace=2.0)
    assert kill is not None and kill.signum == signal.SIGKILL and kill.record_first is None
    assert watched.phase is Phase.KILLED and watched.next_due() is None
    assert watched.advance(100.0, kill_grace=2.0) is None


def test_a_child_posts_its_end_and_anything_else_reads_as_no_hint() -> None:
    board = EndHintBoard(slots=4)
    posted, silent, stale, refused = (board.reserve() for _ in range(4))
    assert None not in (posted, silent, stale, refused) and board.reserve() is None
    assert posted and silent and stale and refused
    board.post(posted, Status.COMPLETED)
    board.post(refused, None)
    board.post(HintSlot(stale.index, stale.token + 1), Status.FAILED)  # another child's
    assert board.collect(posted) == EndHint(Status.COMPLETED)
    assert board.collect(refused) == EndHint(None)
    assert board.collect(silent) is None
    assert board.collect(stale) is None
    assert board.reserve() is not None  # collecting freed the slots


class _Reaped(Child):
    def __init__(self, tache_id: int, hint: EndHint | None) -> None:
        super().__init__(Claimed(tache_id, 1, NOOP, None, "default"), pid=1000 + tache_id)
        self.returncode = 0
        self._hint = hint

    def poll(self) -> int | None:
        return self.returncode

    def end_hint(self) -> EndHint | None:
        return self._hint


class _Rows:
    """The one store verb the endings read, counting what was asked."""

    def __init__(self, states: dict[int, AttemptState] | None) -> None:
        self.states = states
        self.asked: list[list[int]] = []

    def attempt_states(self, ids: list[int]) -> dict[int, AttemptState]:
        self.asked.append(list(ids))
        if self.states is None:
            raise OperationalError("SELECT", {}, Exception("gone"))
        return self.states


def test_the_row_is_read_only_for_the_children_that_posted_no_end() -> None:
    reaped = [
        SupervisedChild(_Reaped(1, EndHint(Status.COMPLETED))),
        SupervisedChild(_Reaped(2, None)),
        SupervisedChild(_Reaped(3, None)),
        SupervisedChild(_Reaped(4, EndHint(None))),
    ]
    store = _Rows({2: AttemptState(Status.RUNNING, 1, None, None, 1002)})
    ends = how_they_ended(store, reaped)  # type: ignore[arg-type]  (a store's one read)
    assert store.asked == [[2, 3]]
    assert ends == [
        AttemptEnd("COMPLETED"),
        AttemptEnd("RUNNING", unrecorded=True),
        AttemptEnd("deleted"),
        AttemptEnd("not this attempt's"),
    ]
    broken = _Rows(None)
    assert how_they_ended(broken, reaped) == [  # type: ignore[arg-type]
        AttemptEnd("COMPLETED"),
        None,
        None,
        AttemptEnd("not this attempt's"),
    ]


def test_the_subprocess_executor_runs_the_managers_own_app() -> None:
    claimed = Claimed(12, 3, NOOP, None, "default")
    command = SubprocessExecutor("myapp:create_app", verbosity=2).command(claimed)
    assert command[:3] == [sys.executable, "-m", "flask"]
    assert command[3:] == [
        "--app",
        "myapp:create_app",
        "taches",
        "run",
        "12",
        "--attempt",
        "3",
        "-vv",
    ]
    assert "--app" not in SubprocessExecutor(None).command(claimed)


def test_verbosity_maps_to_a_log_level() -> None:
    assert [log_level(v) for v in (0, 1, 2, 3)] == [30, 20, 20, 10]


def test_stats_command_prints_counts_and_json(app_ctx: Flask) -> None:
    for queue in ("default", "default", "mail"):
        taches.add(NOOP, queue=queue)
    db.session.remove()
    runner = app_ctx.test_cli_runner()
    result = runner.invoke(args=["taches", "stats", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["by_status"]["TO_RUN"] == 3
    assert figures["by_queue"] == {"default": {"TO_RUN": 2}, "mail": {"TO_RUN": 1}}
    text = runner.invoke(args=["taches", "stats"]).output
    assert text.splitlines()[0].split() == ["status", "total", "default", "mail"]
    assert "TO_RUN 3 2 1" in " ".join(text.split())
    assert "oldest ready TO_RUN: waiting for" in text


def test_format_stats_without_any_task() -> None:
    figures = {
        "by_status": {},
        "by_queue": {},
        "oldest_to_run_age": None,
        "throughput": [{"minutes": 1, "ended": 0, "by_status": {}, "per_minute": 0.0}],
    }
    lines = format_stats(figures)
    assert "oldest ready TO_RUN: none" in lines
    assert lines[-1].split() == ["ended", "in", "the", "last", "1", "min:", "0", "(0/min)"]


@pytest.mark.parametrize(
    "args",
    [
        ["--executor", "thread"],
        ["--loop", "0"],
        ["--max", "0"],
        ["--concurrency", "0"],
        ["--sleep", "-1"],
    ],
)
def test_start_refuses_bad_options(app_ctx: Flask, args: list[str]) -> None:
    result = app_ctx.test_cli_runner().invoke(args=["taches", "start", *args])
    assert result.exit_code == 2
    assert "Error" in result.output


@pytest.mark.parametrize("executor", ["fork", "pool"])
def test_the_loop_claims_runs_and_settles_in_process(db_ctx: Flask, executor: str) -> None:
    """The whole loop, forking from this very process (the CLI tests use real managers)."""
    ids = [taches.add(NOOP) for _ in range(4)]
    crash = taches.add("tests.manager_tasks:exit_abruptly", parametres={"code": 5})
    db.session.remove()
    options = ManagerOptions.from_config(
        db_ctx.config, loop=1, sleep=0.1, max_running=2, poll=0.02, heartbeat=0.1, executor=executor
    )
    manager = Manager(db_ctx, options)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        # Short lifetimes: each run stops claiming after 0.1 s, then waits for its children.
        for _ in range(50):
            if all(rows()[i]["status"] != Status.TO_RUN for i in [*ids, crash]):
                break
            assert manager.run() == 0
    finally:
        manager.close()
    assert signal.getsignal(signal.SIGTERM) is previous
    final = rows()
    assert [final[i]["status"] for i in ids] == [Status.COMPLETED] * 4
    assert final[crash]["status"] == Status.INTERRUPTED
    assert "exited with code 5 without recording an end" in final[crash]["logs"][-1]["message"]
    assert manager.claimed_count == 5


def _orphan(app: Flask, started_ago: float) -> tuple[int, subprocess.Popen[bytes]]:
    """A RUNNING task of this host whose manager is gone and whose process hangs."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    tache_id = taches.add(NOOP, timeout=1)
    db.session.remove()
    store = taches.store()
    store.claim_batch(1, max_running=5, hostname=socket.gethostname())
    with store.write() as conn:
        conn.execute(
            update(taches_table)
            .where(taches_table.c.id == tache_id)
            .values(pid=process.pid, started_at=utcnow() - timedelta(seconds=started_ago))
        )
    return tache_id, process


def _kill_overdue_orphans() -> None:
    """What every manager's rescue pass does on this host (it has no child of its own)."""
    kill_overdue_orphans(taches.store(), hostname=socket.gethostname(), kill_grace=1.0, mine=set())


def test_a_manager_kills_an_orphan_of_its_host_stuck_past_its_timeout(app_ctx: Flask) -> None:
    tache_id, process = _orphan(app_ctx, started_ago=30)
    try:
        _kill_overdue_orphans()
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        process.kill()
        process.wait()
    final = rows()[tache_id]
    assert final["status"] == Status.FAILED
    assert f"process {process.pid} did not stop and was killed" in final["logs"][-1]["message"]


def test_a_reused_pid_is_never_killed_for_a_task(app_ctx: Flask) -> None:
    """The pid now belongs to a process started long after the claim: somebody else."""
    tache_id, process = _orphan(app_ctx, started_ago=3600)
    try:
        _kill_overdue_orphans()
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()
    assert rows()[tache_id]["status"] == Status.RUNNING


def test_a_process_alive_since_before_the_claim_is_the_tasks_own() -> None:
    """A pool executor's child was forked long before the task it runs was claimed."""
    this_process = os.getpid()
    assert started_near(this_process, utcnow() + timedelta(hours=1)) is True
    assert started_near(this_process, utcnow() - timedelta(hours=1)) is False


def test_the_pool_pipes_carry_a_task_and_its_result() -> None:
    """A claimed row through a real pipe, and the result back, with the task claimed next."""
    row = {"id": 7, "logs": [{"message": "é" * 70_000}], "parametres": {"n": 1}}
    claimed = Claimed(7, 2, "app.jobs:send", 3.0, "mail", row)
    tasks_read, tasks_write = os.pipe()
    results_read, results_write = os.pipe()
    os.set_blocking(results_read, False)
    try:
        sender = threading.Thread(target=send_task, args=(tasks_write, claimed))
        sender.start()  # larger than a pipe's buffer: it waits for the reader
        received = receive_task(tasks_read)
        sender.join()
        assert received == claimed and received is not None and received.row == row
        assert read_result(results_read) is None  # nothing posted yet
        post_result(results_write, Status.COMPLETED, retiring=True, following=None)
        assert read_result(results_read) == TaskResult(EndHint(Status.COMPLETED), True)
        # The task a child claimed itself, larger than the buffer: the manager reads it all.
        poster = threading.Thread(target=post_result, args=(results_write, None, False, claimed))
        poster.start()
        select.select([results_read], [], [])
        result = read_result(results_read)
        poster.join()
        assert result == TaskResult(EndHint(None), False, claimed)
        os.close(tasks_write)
        tasks_write = -1
        assert receive_task(tasks_read) is None  # the manager is gone
    finally:
        for fd in (tasks_read, tasks_write, results_read, results_write):
            if fd >= 0:
                os.close(fd)
