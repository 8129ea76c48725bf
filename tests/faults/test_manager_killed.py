"""A manager ``kill -9``-ed at any instant, inside its own transactions included.

Each round starts a ``--forever`` manager on a backlog of short tasks, waits
for it to claim, checks that none of its task processes holds one of its
sockets, then kills it at a random instant of its work. Whatever the kill cut
short, no transaction of the dead manager may outlive it (the server must see
it go), and the next manager, as cron would start it, claims within seconds.
The tasks of every killed manager finish and record their end; at the end each
task ran exactly once (counted from the lines its runs append to a file).
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from tests.app import DATABASE_URL_VARIABLE
from tests.faults.probes import (
    add_counted,
    open_transactions,
    runs,
    settled,
    socket_inodes,
    statuses,
)
from tests.manager_helpers import Managers, managers, rows, wait_for
from tests.manager_helpers import _parent_of as parent_of

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TASKS = 80
ROUNDS = 6
CLAIM_DEADLINE = 20.0  # seconds for a new manager (a Python start included) to claim
GONE_DEADLINE = 5.0  # seconds for the server to see a killed manager's transaction end
DRAIN_DEADLINE = 90.0
SHARE_DEADLINE = 2.0  # seconds for a just-forked task process to let go of the sockets


def claims(group: Managers, index: int) -> int:
    _, path = group.processes[index]
    return len(re.findall(r"claimed task \d+", path.read_text(errors="replace")))


def children_of_manager(manager_pid: int) -> list[int]:
    """The task processes a forked manager started and that still run."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and parent_of(int(entry.name)) == manager_pid
    ]


def shared_sockets(manager_pid: int) -> dict[int, set[str]]:
    """The manager's sockets each of its task processes also holds."""
    mine = socket_inodes(manager_pid)
    found = {child: mine & socket_inodes(child) for child in children_of_manager(manager_pid)}
    return {child: shared for child, shared in found.items() if shared}


def check_no_shared_socket(manager_pid: int) -> None:
    # A child forked an instant ago has not yet let go of them: it must within moments.
    wait_for(
        "no task process holding its manager's sockets",
        lambda: not shared_sockets(manager_pid),
        SHARE_DEADLINE,
        lambda: f"shared: {shared_sockets(manager_pid)}",
    )


def test_a_manager_killed_at_any_instant_leaves_no_lock(fault_app: Flask, tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    url = os.environ[DATABASE_URL_VARIABLE]
    with fault_app.app_context():
        ids = add_counted(out, TASKS, seconds=0.3)
        chance = random.Random()
        with managers(tmp_path, TACHES_MAX="4", TACHES_HEARTBEAT_TIMEOUT="4") as group:
            for index in range(ROUNDS):
                process = group.start("--forever", "-v")
                wait_for(
                    f"manager {index} claims (after {index} killed)",
                    lambda index=index: claims(group, index) > 0 or settled(),
                    CLAIM_DEADLINE,
                    lambda: f"{statuses()}\n{group.output()}",
                )
                check_no_shared_socket(process.pid)
                # Anywhere in its work: claiming, forking, recording pids, reaping.
                time.sleep(chance.uniform(0.0, 0.6))
                process.kill()
                process.wait()
                wait_for(
                    f"no transaction of killed manager {index} left open",
                    lambda: open_transactions(url) == 0,
                    GONE_DEADLINE,
                    lambda: f"{statuses()}\n{group.output()}",
                )
            last = group.start("--forever", "-v")
            wait_for(
                "every task ended",
                settled,
                DRAIN_DEADLINE,
                lambda: f"{statuses()}\n{group.output()}",
            )
            assert group.stop(last) == 0
        final = rows()
        assert {final[i]["status"] for i in ids} == {Status.COMPLETED.value}, statuses()
    ran = runs(out)
    assert sorted(ran) == sorted(ids)
    assert [i for i, n in ran.items() if n != 1] == [], "tasks ran more than once"
