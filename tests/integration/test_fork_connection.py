"""A forked task starts with a database connection its manager opened for it, and shares none.

The fork executor opens the next child's connection ahead of need
(:mod:`flask_taches.worker.executors.next_connection`); once the child is
forked, the manager lets its copy go. Seen from outside, as the kernel sees
the processes: while the task sleeps, before any statement of its own, its
process holds a socket to the database server that its manager held before
the fork; the manager holds none of the child's sockets now, and has no
pooled connection checked out.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from flask_taches.worker.executors import ForkExecutor
from flask_taches.worker.executors.base import Child
from tests.app import db, taches
from tests.faults.probes import socket_inodes
from tests.manager_helpers import wait_for
from tests.store.helpers import claim_one_task, row, store

SERVER_PORTS = {"postgresql": 5432, "mysql": 3306}
CHILD_DEADLINE = 20.0  # seconds for a forked no-op task to end on a loaded machine


def sockets_to_port(pid: int, port: int) -> set[str]:
    """The TCP sockets of process ``pid`` whose other end is ``port`` (``socket:[inode]``)."""
    remote = {}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as lines:
                entries = list(lines)[1:]
        except OSError:  # no IPv6, or the process is gone
            continue
        for line in entries:
            fields = line.split()
            remote[f"socket:[{fields[9]}]"] = int(fields[2].rsplit(":", 1)[1], 16)
    return {inode for inode in socket_inodes(pid) if remote.get(inode) == port}


def ended(child: Child) -> bool:
    return child.poll() is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork executor needs POSIX")
@pytest.mark.dialects("postgresql", "mysql")  # SQLite has no socket: a child opens its file
def test_a_forked_task_runs_on_the_connection_opened_for_it(
    db_ctx: Flask, dialect: str, tmp_path: Path
) -> None:
    executor = ForkExecutor(db_ctx)
    started: list[Child] = []
    try:
        # The first child connects itself; its fork is when the next one's connection opens.
        first = executor.start(claim_one_task())
        started.append(first)
        wait_for("the first task's end", lambda: ended(first), CHILD_DEADLINE)
        taches.add(
            "tests.manager_tasks:sleep_then_append",
            parametres={"path": str(tmp_path / "ran.txt"), "seconds": 1.5},
        )
        db.session.remove()
        (claimed,) = store().claim_batch(1, max_running=100, hostname="handover-host")
        port = SERVER_PORTS[dialect]
        executor.next_connection.join()
        before_fork = sockets_to_port(os.getpid(), port)
        child = executor.start(claimed)
        started.append(child)
        # Sleeping, the task has said nothing to the server: its socket is the one handed
        # over, and the child has let go of every other it inherited (just after the fork,
        # on a loaded machine, it may not have yet: that is why this waits).
        theirs = wait_for(
            "the sleeping task's own connection, and no socket shared with the manager",
            lambda: own_sockets_once_settled(child.pid, port),
            CHILD_DEADLINE,
        )
        assert not ended(child), "seen while the task ran"
        assert theirs <= before_fork  # opened by the manager, before the fork
        assert store().engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        wait_for("the sleeping task's end", lambda: ended(child), CHILD_DEADLINE)
        assert child.returncode == 0
        assert row(claimed.id)["status"] == Status.COMPLETED
    finally:
        executor.close()
        for process in started:
            stop(process)


def own_sockets_once_settled(pid: int, port: int) -> set[str]:
    """The child's sockets to the server, once it shares no socket with this process."""
    if socket_inodes(os.getpid()) & socket_inodes(pid):
        return set()
    return sockets_to_port(pid, port)


def stop(child: Child) -> None:
    """What a failed test left running."""
    if child.returncode is None:
        child.signal(signal.SIGKILL)
        wait_for("a killed task's end", lambda: ended(child), CHILD_DEADLINE)
