"""Several hosts on one PostgreSQL, simulated with namespaces (:mod:`.hosts`).

(a) A host frozen (SIGSTOP) past the heartbeat timeout: another host rescues
and retries its tasks; resumed, the frozen host's writes are refused and its
task processes stop on their own. (b) A host whose link goes down while its
tasks run: the same, and once the link is back nothing it writes overwrites
the retry. (c) Three hosts draining 2,000 tasks: each runs once, and never
more than ``TACHES_MAX`` RUN at once across them.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from tests.app import db, taches
from tests.conftest import _make_app
from tests.databases import server_database
from tests.faults.hosts import Host, HostManagers, simulated_hosts
from tests.faults.probes import settled, statuses
from tests.faults.servers import PrivatePostgres
from tests.manager_helpers import _parent_of as parent_of
from tests.manager_helpers import rows, wait_for
from tests.manager_tasks import read_lines

pytestmark = [pytest.mark.faults, pytest.mark.slow]

HOSTS = 3
BOOT_DEADLINE = 60.0
RESCUE_DEADLINE = 40.0
DRAIN_DEADLINE = 150.0  # 2,000 tasks: about 60 s on two idle cores
STOP_DEADLINE = 15.0
SETTINGS = {"TACHES_HEARTBEAT": "0.3", "TACHES_HEARTBEAT_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[list[Host], PrivatePostgres]]:
    with simulated_hosts(HOSTS) as made:
        yield made


@pytest.fixture
def group(
    hosts: tuple[list[Host], PrivatePostgres],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[HostManagers]:
    """The test app on a database of its own, and managers for the hosts."""
    _, server = hosts
    with server_database(server.url()) as database:
        url = database.render_as_string(hide_password=False)
        for app in _make_app(url, tmp_path, monkeypatch, request):
            with app.app_context():
                group = HostManagers(tmp_path, server, str(database.database), **SETTINGS)
                try:
                    yield group
                finally:
                    group.close()


def add_steps(out: Path, count: int, first: int, later: int = 10) -> list[int]:
    ids = taches.add_many(
        Tache(
            method="tests.faults.tasks:steps",
            parametres={"path": str(out), "first": first, "later": later},
            max_attempts=2,
        )
        for _ in range(count)
    )
    db.session.remove()
    return ids


def running_on(host: Host, ids: list[int]) -> bool:
    found = rows()
    return all(
        found[i]["status"] == Status.RUNNING.value
        and found[i]["hostname"] == host.name
        and found[i]["pid"] is not None
        for i in ids
    )


def task_processes(group: HostManagers, host: Host) -> set[int]:
    """The host's task processes: those whose parent is a manager (itself a child of unshare)."""
    pids = set(group.host_pids(host))
    managers = {pid for pid in pids if _command(parent_of(pid)) == "unshare"}
    return {pid for pid in pids if parent_of(pid) in managers}


def _command(pid: int | None) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def check_rescued_and_fenced(
    group: HostManagers, cut: Host, rescuer: Host, ids: list[int], out: Path, before: set[int]
) -> None:
    """Retried and COMPLETED on ``rescuer``; the cut host's late runs left no trace."""
    wait_for(
        "the tasks retried and COMPLETED elsewhere",
        lambda: all(r["status"] == Status.COMPLETED.value for r in (rows()[i] for i in ids)),
        RESCUE_DEADLINE,
        lambda: f"{statuses()}\n{group.output()[-6000:]}",
    )
    wait_for(
        f"the task processes of {cut.name} stopped on their own",
        lambda: not before & task_processes(group, cut),
        STOP_DEADLINE,
        lambda: group.output()[-6000:],
    )
    final = rows()
    for i in ids:
        assert (final[i]["attempts"], final[i]["hostname"]) == (2, rescuer.name), final[i]
    lines = Counter(tuple(line.split()) for line in read_lines(out))
    assert lines == Counter((str(i), "2") for i in ids), "a late attempt 1 ran to its end"


def two_tasks_running(
    group: HostManagers, host: Host, out: Path, steps: int
) -> tuple[list[int], set[int]]:
    """Two long tasks RUNNING on ``host``: their ids and their processes."""
    ids = add_steps(out, 2, first=steps)
    group.start_on(host, "--forever", "-v", "--max", "2")
    wait_for(f"both tasks RUNNING on {host.name}", lambda: running_on(host, ids), BOOT_DEADLINE)
    children = task_processes(group, host)
    assert len(children) == len(ids), children
    return ids, children


def rescue_on(group: HostManagers, host: Host, done: Callable[[], bool]) -> None:
    """A manager on ``host``, until the tasks it is to rescue are ``done``."""
    group.start_on(host, "--forever", "-v")
    wait_for(
        f"the tasks rescued and retried on {host.name}",
        done,
        RESCUE_DEADLINE,
        lambda: f"{statuses()}\n{group.output()[-6000:]}",
    )


def test_a_frozen_host_is_rescued_and_fenced(
    group: HostManagers, hosts: tuple[list[Host], PrivatePostgres], tmp_path: Path
) -> None:
    (first, second, *_), _ = hosts
    out = tmp_path / "runs.txt"
    ids, children = two_tasks_running(group, first, out, steps=300)
    group.freeze(first, True)
    try:
        rescue_on(group, second, lambda: all(rows()[i]["attempts"] == 2 for i in ids))
    finally:
        group.freeze(first, False)
    check_rescued_and_fenced(group, first, second, ids, out, children)


def test_a_host_cut_off_is_rescued_and_cannot_overwrite(
    group: HostManagers, hosts: tuple[list[Host], PrivatePostgres], tmp_path: Path
) -> None:
    (first, second, *_), _ = hosts
    out = tmp_path / "runs.txt"
    ids, children = two_tasks_running(group, first, out, steps=400)
    first.link(False)
    try:
        completed = Status.COMPLETED.value
        rescue_on(group, second, lambda: all(rows()[i]["status"] == completed for i in ids))
        retried = {i: rows()[i] for i in ids}
    finally:
        first.link(True)
    check_rescued_and_fenced(group, first, second, ids, out, children)
    # Back on the network, the first host wrote nothing over the retry.
    time.sleep(1.0)
    after = rows()
    for i in ids:
        for column in ("status", "attempts", "hostname", "result", "ended_at", "logs"):
            assert after[i][column] == retried[i][column], (i, column)


def test_three_hosts_run_each_task_once_within_the_global_max(
    group: HostManagers, hosts: tuple[list[Host], PrivatePostgres], tmp_path: Path
) -> None:
    machines, _ = hosts
    out, tasks, most = tmp_path / "runs.txt", 2000, 6
    later = utcnow() + timedelta(hours=1)
    ids = taches.add_many(
        Tache(method="tests.manager_tasks:append_line", parametres={"path": str(out)}, run_at=later)
        for _ in range(tasks)
    )
    db.session.remove()
    # The pool executor: what is under test (claims, the global max, exactly once) is the
    # managers' and the database's, the same for every executor, and 2,000 forks would
    # make this the tier's longest test by far.
    processes = [
        group.start_on(h, "--forever", "-v", "--max", str(most), "--executor", "pool")
        for h in machines
    ]
    wait_for(
        "every host's manager up",
        lambda: group.output().count("until stopped") == len(machines),
        BOOT_DEADLINE,
        group.output,
    )
    with taches.store().write() as conn:
        conn.execute(update(taches_table).where(taches_table.c.id.in_(ids)).values(run_at=utcnow()))
    wait_for("every task ended", settled, DRAIN_DEADLINE, lambda: f"{statuses()}")
    for process in processes:
        assert group.stop(process) == 0
    lines = [line.split() for line in read_lines(out)]
    ran = Counter(int(tache_id) for tache_id, _ in lines)
    assert sorted(ran) == sorted(ids) and set(ran.values()) == {1}, "a task ran twice, or never"
    assert max(int(seen) for _, seen in lines) <= most
    final = rows()
    assert {final[i]["status"] for i in ids} == {Status.COMPLETED.value}
    by_host = Counter(final[i]["hostname"] for i in ids)
    assert set(by_host) == {h.name for h in machines}, by_host
    claims = Counter(int(i) for i in re.findall(r"claimed task (\d+)", group.output()))
    assert set(claims.values()) == {1}
