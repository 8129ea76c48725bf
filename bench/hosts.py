"""Host throughput: 1, 2 and 4 simulated hosts' managers on one PostgreSQL.

    sudo .venv/bin/python bench/hosts.py [--tasks 600] [--max 8] [--repeats 1]

Each host is a network, UTS and PID namespace of its own joined by a veth link
to a private PostgreSQL (``tests/faults/hosts.py``; root needed, everything is
removed after). Every run drains the same no-op tasks with the same total
slots (``--max``, the global TACHES_MAX), split over 1, 2 or 4 hosts' managers;
the rate runs from the first task's start to the last one's end, and each is
printed as a ratio to the one-host run. All the hosts share this machine's
cores: the ratio says what the claims cost when managers compete, not what
more machines would add.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, select, update  # noqa: E402

from flask_taches import Status, Tache  # noqa: E402
from flask_taches.clock import utcnow  # noqa: E402
from flask_taches.models import taches_table  # noqa: E402
from tests import app as test_app  # noqa: E402
from tests.databases import server_database  # noqa: E402
from tests.faults.hosts import Host, HostManagers, simulated_hosts  # noqa: E402
from tests.faults.servers import PrivatePostgres  # noqa: E402
from tests.manager_helpers import wait_for  # noqa: E402

HOST_COUNTS = (1, 2, 4)
DEADLINE = 600.0


def drain(
    folder: Path, server: PrivatePostgres, database: str, hosts: list[Host], tasks: int, most: int
) -> float:
    """Tasks per second, first start to last end, with one manager on each of ``hosts``."""
    taches = test_app.taches
    with taches.store().write() as conn:
        conn.execute(delete(taches_table))
    later = utcnow() + timedelta(hours=1)
    ids = taches.add_many(
        Tache(method="tests.manager_tasks:noop", run_at=later) for _ in range(tasks)
    )
    test_app.db.session.remove()
    group = HostManagers(folder, server, database)
    try:
        processes = [group.start_on(h, "--forever", "--max", str(most), "-v") for h in hosts]
        wait_for(
            "the managers up", lambda: group.output().count("until stopped") == len(hosts), 120
        )
        with taches.store().write() as conn:
            conn.execute(
                update(taches_table).where(taches_table.c.id.in_(ids)).values(run_at=utcnow())
            )
        wait_for(f"{tasks} tasks drained", lambda: _completed() == tasks, DEADLINE)
        for process in processes:
            group.stop(process)
    finally:
        group.close()
    with taches.store().read() as conn:
        first, last = conn.execute(
            select(func.min(taches_table.c.started_at), func.max(taches_table.c.ended_at))
        ).one()
    return tasks / (last - first).total_seconds()


def _completed() -> int:
    with test_app.taches.store().read() as conn:
        query = select(func.count()).where(taches_table.c.status == Status.COMPLETED.value)
        return int(conn.execute(query).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--max", type=int, default=8, help="total slots (TACHES_MAX)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    folder = Path(tempfile.mkdtemp(prefix="taches-bench-hosts-"))
    rates: dict[int, list[float]] = {n: [] for n in HOST_COUNTS}
    with simulated_hosts(max(HOST_COUNTS)) as (hosts, server), server_database(server.url()) as db:
        os.environ[test_app.DATABASE_URL_VARIABLE] = db.render_as_string(hide_password=False)
        os.environ[test_app.INSTANCE_PATH_VARIABLE] = str(folder / "instance")
        app = test_app.create_app()
        with app.app_context():
            test_app.db.create_all()
            for _ in range(args.repeats):
                for count in HOST_COUNTS:  # interleaved, so drift hits every count alike
                    rate = drain(
                        folder, server, str(db.database), hosts[:count], args.tasks, args.max
                    )
                    rates[count].append(rate)
                    time.sleep(1.0)
            test_app.db.session.remove()
            test_app.db.engine.dispose()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    base = statistics.median(rates[1])
    print(f"{args.tasks} no-op tasks, --max {args.max} in all, medians of {args.repeats}")
    print("| hosts | tasks/s | ratio to 1 host |")
    print("|---|---|---|")
    for count in HOST_COUNTS:
        rate = statistics.median(rates[count])
        print(f"| {count} | {rate:.1f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
