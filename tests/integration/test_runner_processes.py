"""``flask taches run`` as a real process: live logs, cancel, timeout, SIGTERM, fencing.

Each test starts ``python -m flask --app tests.app:create_app taches run ID`` in
/work/main with the test's database in the environment, watches the row from
a connection of its own, and kills whatever is still running at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.pool import NullPool

from flask_taches import Status
from flask_taches.models import taches_table
from flask_taches.processes import pid_alive
from tests import app as test_app
from tests import polling
from tests.app import taches

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # seconds before a test gives up on a process or a row
#: Fast beats, so cancel and fencing are seen quickly.
FAST = {"TACHES_HEARTBEAT": "0.2", "TACHES_FLUSH_INTERVAL": "0.1", "TACHES_KILL_GRACE": "5"}


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "tests.app:create_app", "taches", *args]


def flask_env(settings: dict[str, str]) -> dict[str, str]:
    """This test's database and instance path (set by the fixtures), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **settings}


@pytest.fixture
def start() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``flask taches ...`` processes; any left running is killed at teardown."""
    started: list[subprocess.Popen[str]] = []

    def _start(*args: str, **settings: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            flask_command(*args),
            cwd=ROOT,
            env=flask_env({**FAST, **settings}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield _start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def second_connection(any_db_app: Flask) -> Iterator[Engine]:
    """An engine of the test's own, apart from the app's and the store's."""
    engine = create_engine(os.environ[test_app.DATABASE_URL_VARIABLE], poolclass=NullPool)
    yield engine
    engine.dispose()


def read(engine: Engine, tache_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
        return dict(found.mappings().one())


def wait_for(predicate: Callable[[], Any]) -> Any:
    return polling.wait_for(predicate, repr(predicate), WAIT, interval=0.02)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=WAIT)
    return process.returncode, out, err


def add(method: str, **options: Any) -> int:
    tache_id: int = taches.add(method, **options)
    taches.db().session.remove()  # hold no snapshot or lock while the process runs
    return tache_id


def running_with(engine: Engine, tache_id: int, message: str) -> dict[str, Any] | None:
    stored = read(engine, tache_id)
    messages = [entry["message"] for entry in stored["logs"]]
    if stored["status"] == Status.RUNNING and message in messages:
        return stored
    return None


def test_logs_are_in_the_database_while_the_task_runs_then_cancel_stops_it(
    any_db_app: Flask, second_connection: Engine, start: Callable[..., subprocess.Popen[str]]
) -> None:
    with any_db_app.app_context():
        tache_id = add("tests.tasks:slow", parametres={"seconds": WAIT})
    process = start("run", str(tache_id), "-v")
    live = wait_for(lambda: running_with(second_connection, tache_id, "slow task begins"))
    assert live["pid"] == process.pid, "the pid of the process running the task itself"
    assert live["progress"]["percent"] == 100.0
    assert "slow task ends" not in [entry["message"] for entry in live["logs"]]
    assert process.poll() is None, "still running while its logs are readable"

    with any_db_app.app_context():
        assert taches.cancel(tache_id, who="tester") is Status.RUNNING
    code, out, _ = finish(process)
    stored = read(second_connection, tache_id)
    assert (code, stored["status"]) == (1, Status.CANCELLED)
    assert stored["logs"][-1]["message"].startswith("cancelled by tester at ")
    assert f"task {tache_id} CANCELLED" in out


#: Where the database does not change what is tested, once is enough (subprocesses are slow).
SQLITE_ONLY = pytest.mark.parametrize("dialect", ["sqlite"])


@SQLITE_ONLY
def test_a_timeout_fails_a_running_process(
    any_db_app: Flask, second_connection: Engine, start: Callable[..., subprocess.Popen[str]]
) -> None:
    with any_db_app.app_context():
        tache_id = add("tests.tasks:slow", parametres={"seconds": WAIT}, timeout=0.5)
    code, _, err = finish(start("run", str(tache_id)))
    stored = read(second_connection, tache_id)
    assert (code, stored["status"]) == (1, Status.FAILED)
    assert stored["logs"][-1]["message"] == "timeout after 0.5 s"
    assert f"task {tache_id} ended FAILED" in err


@SQLITE_ONLY
def test_sigterm_interrupts_a_running_process(
    any_db_app: Flask, second_connection: Engine, start: Callable[..., subprocess.Popen[str]]
) -> None:
    with any_db_app.app_context():
        tache_id = add("tests.tasks:slow", parametres={"seconds": WAIT})
    process = start("run", str(tache_id))
    wait_for(lambda: running_with(second_connection, tache_id, "slow task begins"))
    process.send_signal(signal.SIGTERM)
    code, _, _ = finish(process)
    stored = read(second_connection, tache_id)
    assert (code, stored["status"]) == (1, Status.INTERRUPTED)
    assert stored["logs"][-1]["message"] == "interrupted by SIGTERM"
    assert stored["heartbeat_at"] is None


@pytest.mark.taches_config(TACHES_HEARTBEAT=0.2)
def test_a_task_deaf_to_its_stop_is_ended_by_its_watchdog(
    app: Flask, start: Callable[..., subprocess.Popen[str]]
) -> None:
    with app.app_context():
        tache_id = add("tests.tasks:stubborn", parametres={"seconds": WAIT}, timeout=0.3)
    code, _, _ = finish(start("run", str(tache_id), TACHES_KILL_GRACE="0.5"))
    with app.app_context():
        stored = taches.get_or_raise(tache_id)
        assert (code, stored.status) == (1, Status.FAILED)
        assert [entry["message"] for entry in stored.logs] == [
            "timeout after 0.3 s",
            "the task did not stop within 0.5 s of being asked; its process exits",
        ]


@SQLITE_ONLY
def test_the_hidden_attempt_option_runs_a_claimed_row(
    any_db_app: Flask, second_connection: Engine, start: Callable[..., subprocess.Popen[str]]
) -> None:
    with any_db_app.app_context():
        tache_id = add("tests.tasks:add", parametres={"a": 1})
        attempt = taches.store().claim_one(tache_id)
    code, _, _ = finish(start("run", str(tache_id), "--attempt", str(attempt)))
    stored = read(second_connection, tache_id)
    assert (code, stored["status"], stored["result"]) == (0, Status.COMPLETED, 11)
    assert stored["attempts"] == attempt


#: Runs one task with a database that refuses to record any end (locked, restarting).
REFUSING_DATABASE = """
import sys
from sqlalchemy.exc import OperationalError
from flask_taches import runner
from flask_taches.runner import ending
from flask_taches.store import Store
from tests.app import create_app

def refuse(*args, **kwargs):
    raise OperationalError("UPDATE taches", {}, Exception("database is locked"))

Store.record_end = refuse
ending.FIRST_RETRY_DELAY = 0.01
ending.END_RETRY_FOR = 0.5
with create_app().app_context():
    runner.run_one(int(sys.argv[1]))
"""


@pytest.mark.taches_config(TACHES_HEARTBEAT=0.2)
def test_a_deaf_task_whose_end_cannot_be_recorded_still_leaves(app: Flask) -> None:
    """Its process exits all the same: a live, beating process would hold the row for ever."""
    with app.app_context():
        tache_id = add("tests.tasks:stubborn", parametres={"seconds": WAIT}, timeout=0.3)
    process = subprocess.run(
        [sys.executable, "-c", REFUSING_DATABASE, str(tache_id)],
        cwd=ROOT,
        env=flask_env({**FAST, "TACHES_KILL_GRACE": "0.5"}),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert process.returncode == 1, process.stderr
    with app.app_context():
        store = taches.store()
        stored = taches.get_or_raise(tache_id)
        assert stored.status == Status.RUNNING and stored.pid is not None
        # Nothing recorded its end, but its process is gone: the rescue settles it.
        (rescued,) = store.rescue(
            heartbeat_timeout=3600, hostname=stored.hostname, is_alive=pid_alive
        )
        assert (rescued.id, rescued.status) == (tache_id, Status.INTERRUPTED)
