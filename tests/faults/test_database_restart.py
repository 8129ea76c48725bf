"""The database restarted under two ``--forever`` managers draining hundreds of tasks.

The private server is stopped for a few seconds in the middle of the drain,
then started again. The managers stay up and say so once per outage (not
once per poll); the tasks whose process was running record their end once
the server is back (or end INTERRUPTED and are retried); no row stays
RUNNING, and no task runs twice (counted from a file each run appends to).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from tests.app import db, taches
from tests.faults.probes import add_counted, runs, settled, statuses
from tests.faults.servers import PrivateMariaDB, PrivatePostgres
from tests.manager_helpers import managers, rows, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TASKS = 200
DOWN_FOR = 4.0  # seconds the server is away
BOOT_DEADLINE = 60.0
DRAIN_DEADLINE = 100.0
ABOUT_THE_DATABASE = re.compile(r"reachable|rror|failed|cannot")


@pytest.mark.dialects("postgresql", "mysql")
def test_managers_ride_out_a_database_restart(
    fault_app: Flask, fault_server: PrivatePostgres | PrivateMariaDB, tmp_path: Path
) -> None:
    out = tmp_path / "runs.txt"
    with fault_app.app_context():
        ids = add_counted(out, TASKS, seconds=0.05)
        settings = {"TACHES_MAX": "6", "TACHES_HEARTBEAT_TIMEOUT": "15"}
        with managers(tmp_path, **settings) as group:
            processes = [group.start("--forever", "-v") for _ in range(2)]
            wait_for(
                "a third of the tasks ran",
                lambda: len(runs(out)) >= TASKS // 3,
                BOOT_DEADLINE,
                group.output,
            )
            try:
                fault_server.stop("fast")
                time.sleep(DOWN_FOR)
            finally:
                fault_server.start()
            # This process's own pooled connections died with the server.
            taches.store().engine.dispose()
            db.engine.dispose()
            wait_for(
                "every task ended",
                settled,
                DRAIN_DEADLINE,
                lambda: f"{statuses()}\n{group.output()[-8000:]}",
            )
            assert [p.poll() for p in processes] == [None, None], group.output()[-8000:]
            for process in processes:
                assert group.stop(process) == 0
            output = group.output()
            final = rows()
    assert {final[i]["status"] for i in ids} == {Status.COMPLETED.value}, statuses()
    ran = runs(out)
    assert sorted(ran) == sorted(ids)
    assert [i for i, n in ran.items() if n != 1] == [], "tasks ran more than once"
    for part in output.split("--- manager ")[1:]:
        outages = re.findall(r"database unreachable", part)
        # What the manager said about its database, not the tail of its claims.
        said = "\n".join(line for line in part.splitlines() if ABOUT_THE_DATABASE.search(line))
        assert len(outages) == 1, f"{len(outages)} outage lines:\n{said}"
        # One line, not one per poll: no claim error line of its own.
        assert "Traceback" not in part and not re.search(r"\d claim failed", part), part[-8000:]
        assert "database reachable again" in part, part[-8000:]
