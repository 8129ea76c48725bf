"""The task commands: real ``flask taches run`` processes for the exit codes and ``-vv``,
the others through Flask's CLI runner (same code, no process start-up)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import inspect, select, update

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from tests import tasks
from tests.app import db, taches

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds before a process is considered stuck
ANSI = "\033["


def flask_env() -> dict[str, str]:
    """This test's database and instance path (set by the fixtures) for a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_processes(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``flask taches <command>`` processes side by side; wait for all."""
    base = [sys.executable, "-m", "flask", "--app", "tests.app:create_app", "taches"]
    processes = [
        subprocess.Popen(
            [*base, *command],
            cwd=ROOT,
            env=flask_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    done = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=WAIT)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return done


def row(tache_id: int) -> dict[str, Any]:
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
        return dict(found.mappings().one())


def count() -> int:
    with taches.store().read() as conn:
        return len(conn.execute(select(taches_table.c.id)).all())


def set_method(tache_id: int, method: str) -> None:
    with taches.store().write() as conn:
        conn.execute(
            update(taches_table).where(taches_table.c.id == tache_id).values(method=method)
        )


def one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return str(lines[0])


# -- real processes: exit codes and -vv ----------------------------------------------------


def test_run_exit_codes_and_vv_output_in_real_processes(db_ctx: Flask) -> None:
    chatty = taches.add("tests.tasks:chatty", parametres_caches={"token": tasks.SECRET})
    failing = taches.add("tests.tasks:raises")
    refused = taches.add("tests.tasks:add", parametres={"a": 1})
    set_method(refused, "os:getcwd")
    refused_before = row(refused)
    db.session.remove()
    completed, failed, unknown, forbidden = run_processes(
        ["run", str(chatty), "-vv"], ["run", str(failing)], ["run", "999999"], ["run", str(refused)]
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith(f"task {chatty} started: tests.tasks:chatty (attempt 1, pid ")
    assert lines[1].endswith("INFO     chatty begins")
    assert lines[2].endswith("DEBUG    a debug line")
    assert lines[3] == '    {"n": 1}'
    # Not a terminal: progress is throttled; the last state shows before the next line.
    assert lines[4:6] == ["progress  33.3% 1/3 counting", "progress 100.0% 3/3 counting"]
    assert lines[6].endswith("WARNING  the token has 24 characters")
    assert lines[7].startswith(f"task {chatty} COMPLETED in ")
    assert ANSI not in completed.stdout, "plain lines when stdout is not a terminal"
    assert tasks.SECRET not in completed.stdout + completed.stderr
    assert row(chatty)["status"] == Status.COMPLETED

    assert failed.returncode == 1
    assert f"task {failing} ended FAILED" in failed.stderr
    assert row(failing)["status"] == Status.FAILED

    assert unknown.returncode == 2
    assert one_error_line(unknown) == "Error: no task with id 999999"

    assert forbidden.returncode == 2
    assert "outside TACHES_ALLOWED_MODULES" in one_error_line(forbidden)
    assert row(refused) == refused_before, "a refused run changes nothing"


# -- the CLI runner ---------------------------------------------------------------------------


def invoke(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["taches", *args])


def test_run_refuses_an_id_that_is_not_a_number_or_not_to_run(app_ctx: Flask) -> None:
    result = invoke(app_ctx, "run", "abc")
    assert result.exit_code == 2
    assert one_error_line(result) == "Error: 'abc' is not a task id (a positive integer)"
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    assert invoke(app_ctx, "run", str(tache_id)).exit_code == 0
    again = invoke(app_ctx, "run", str(tache_id))
    assert again.exit_code == 2
    assert "not TO_RUN" in one_error_line(again)
    forced = invoke(app_ctx, "run", str(tache_id), "--force", "-v")
    assert forced.exit_code == 0
    assert f"task {tache_id} COMPLETED" in forced.stdout
    assert row(tache_id)["attempts"] == 2


def test_run_with_an_attempt_that_is_not_the_rows_changes_nothing(app_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    before = row(tache_id)
    result = invoke(app_ctx, "run", str(tache_id), "--attempt", "3")
    # Not this run's attempt: exit_codes.EXIT_NOT_RUN, as for an executor's child.
    assert result.exit_code == 2
    assert result.stderr == f"task {tache_id} ended not recorded (taken over elsewhere)\n"
    assert row(tache_id) == before


def test_add_prints_the_id_and_keeps_every_option(app_ctx: Flask) -> None:
    result = invoke(
        app_ctx,
        "add",
        "tests.tasks:add",
        "--json",
        '{"a": 1, "b": 1}',
        "-p",
        "b=2",
        "-p",
        "name=Ada",
        "--signature",
        "sum",
        "--queue",
        "fast",
        "--priority",
        "3",
        "--run-at",
        "2030-01-31T13:00:00+01:00",
        "--max-attempts",
        "4",
        "--timeout",
        "1.5",
    )
    assert result.exit_code == 0, result.output
    stored = row(int(result.stdout))
    assert stored["parametres"] == {"a": 1, "b": 2, "name": "Ada"}
    assert (stored["signature"], stored["queue"], stored["priority"]) == ("sum", "fast", 3)
    assert (stored["max_attempts"], stored["timeout"]) == (4, 1.5)
    assert stored["run_at"].isoformat() == "2030-01-31T12:00:00+00:00"
    assert (stored["status"], stored["owner"]) == (Status.TO_RUN, None)


@pytest.mark.parametrize(
    "args",
    [
        ["os:getcwd"],
        ["tests.tasks:nothing_here"],
        ["tests.tasks:add", "--json", "{nope"],
        ["tests.tasks:add", "--json", "[1, 2]"],
        ["tests.tasks:add", "-p", "novalue"],
        ["tests.tasks:add", "--priority", "high"],
        ["tests.tasks:add", "--run-at", "someday"],
        ["tests.tasks:add", "--max-attempts", "0"],
        ["tests.tasks:add", "--timeout", "0"],
        ["tests.tasks:add", "--colour", "red"],
        ["tests.tasks:add", "--priority", str(10**12)],
        ["tests.tasks:add", "--signature", "s" * 300],
        ["tests.tasks:add", "--queue", "q" * 100],
        ["tests.tasks:add", "--timeout", "inf"],
    ],
)
def test_add_bad_input_is_one_line_and_saves_nothing(db_ctx: Flask, args: list[str]) -> None:
    result = invoke(db_ctx, "add", *args)
    assert result.exit_code == 2
    one_error_line(result)
    assert result.stdout == ""
    assert count() == 0


def test_list_and_show_never_show_parametres_caches(app_ctx: Flask) -> None:
    secret = taches.add(
        "tests.tasks:uses_secret", signature="s", parametres_caches={"token": tasks.SECRET}
    )
    done = taches.add("tests.tasks:add", parametres={"a": 1})
    taches.add("tests.tasks:add", parametres={"a": 2}, signature="s")
    assert invoke(app_ctx, "run", str(done)).exit_code == 0

    table = invoke(app_ctx, "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROGRESS", "CREATED", "(UTC)", "METHOD"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "2", "1"]
    completed = invoke(app_ctx, "list", "--status", "completed", "--json")
    assert [t["id"] for t in _json(completed)] == [done]
    by_signature = _json(invoke(app_ctx, "list", "--signature", "s", "--limit", "1", "--json"))
    assert [t["id"] for t in by_signature] == [3]
    everything = invoke(app_ctx, "list", "--json")
    assert len(_json(everything)) == 3
    assert all("parametres_caches" not in t for t in _json(everything))

    shown = invoke(app_ctx, "show", str(secret), "--json")
    assert _json(shown)["id"] == secret
    assert "parametres_caches" not in _json(shown)
    human = invoke(app_ctx, "show", str(done))
    assert human.stdout.splitlines()[0] == f"task {done}  COMPLETED"
    assert "  result               11" in human.stdout
    for result in (table, completed, everything, shown, human):
        assert tasks.SECRET not in result.output
    missing = invoke(app_ctx, "show", "999999")
    assert (missing.exit_code, one_error_line(missing)) == (2, "Error: no task with id 999999")


def test_cancel_restart_delete(app_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    cancelled = invoke(app_ctx, "cancel", str(tache_id))
    assert (cancelled.exit_code, cancelled.stdout) == (0, f"task {tache_id} is CANCELLED\n")
    assert row(tache_id)["logs"][-1]["message"].startswith("cancelled by cli")
    twice = invoke(app_ctx, "cancel", str(tache_id))
    assert twice.exit_code == 2
    assert "nothing to cancel" in one_error_line(twice)

    assert invoke(app_ctx, "restart", str(tache_id)).stdout == f"task {tache_id} is TO_RUN\n"
    assert row(tache_id)["status"] == Status.TO_RUN
    assert "nothing to restart" in one_error_line(invoke(app_ctx, "restart", str(tache_id)))

    taches.store().claim_one(tache_id)
    asked = invoke(app_ctx, "cancel", str(tache_id))
    assert "asked its process to stop it" in asked.stdout
    refused = invoke(app_ctx, "delete", str(tache_id))
    assert refused.exit_code == 2
    assert "RUNNING" in one_error_line(refused)

    other = taches.add("tests.tasks:add", parametres={"a": 1})
    assert invoke(app_ctx, "delete", str(other)).stdout == f"task {other} deleted\n"
    assert taches.get(other) is None
    for command in ("cancel", "restart", "delete"):
        result = invoke(app_ctx, command, "x1")
        assert (result.exit_code, "is not a task id" in result.stderr) == (2, True)


@pytest.mark.parametrize("command", ["run", "show", "cancel", "restart", "delete"])
def test_an_id_beyond_the_integer_column_is_one_error_line(db_ctx: Flask, command: str) -> None:
    result = invoke(db_ctx, command, "99999999999999999999")
    assert result.exit_code == 2
    assert "is not a task id" in one_error_line(result)


def test_purge_deletes_old_finished_tasks_and_their_files(db_ctx: Flask, tmp_path: Path) -> None:
    attachment = tmp_path / "data.csv"
    attachment.write_text("x\n")
    old_done = taches.add("tests.tasks:add", fichier=attachment)
    old_failed, old_cancelled_next = taches.chain("tests.tasks:raises", "tests.tasks:add")
    recent = taches.add("tests.tasks:add")
    old_waiting = taches.add("tests.tasks:add")
    store = taches.store()
    for tache_id in (old_done, old_failed, recent):
        assert store.claim_one(tache_id)
        store.record_end(tache_id, 1, Status.COMPLETED if tache_id != old_failed else Status.FAILED)
    ten_days_ago = utcnow() - timedelta(days=10)
    with store.write() as conn:
        conn.execute(
            update(taches_table)
            .where(taches_table.c.id.in_([old_done, old_failed, old_cancelled_next, old_waiting]))
            .values(ended_at=ten_days_ago, created_at=ten_days_ago)
        )
    assert row(old_cancelled_next)["status"] == Status.CANCELLED
    db.session.remove()

    only_failed = invoke(db_ctx, "purge", "--older-than", "5", "--status", "FAILED")
    assert only_failed.stdout == "1 task(s) deleted\n"
    result = invoke(db_ctx, "purge", "--older-than", "5")
    assert (result.exit_code, result.stdout) == (0, "2 task(s) deleted\n")
    remaining = {r["id"] for r in _json(invoke(db_ctx, "list", "--json"))}
    assert remaining == {recent, old_waiting}
    assert not (taches.folder() / str(old_done)).exists()
    bad = invoke(db_ctx, "purge", "--older-than", "5", "--status", "TO_RUN")
    assert bad.exit_code == 2
    one_error_line(bad)
    assert one_error_line(invoke(db_ctx, "purge")).startswith("Error: Missing option")


def test_init_db_creates_the_table_once(app_ctx: Flask) -> None:
    db.drop_all()
    first = invoke(app_ctx, "init-db")
    second = invoke(app_ctx, "init-db")
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert first.stdout.splitlines() == [
        "table 'taches' is ready",
        "table 'taches_managers' is ready",
        "table 'taches_leases' is ready",
        "table 'taches_schedules' is ready",
    ]
    assert {"taches", "taches_managers", "taches_leases"} <= set(
        inspect(db.engine).get_table_names()
    )
    assert invoke(app_ctx, "add", "tests.tasks:add", "-p", "a=1").exit_code == 0


def test_init_db_leaves_a_new_sqlite_file_in_wal_mode(app_ctx: Flask, tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    env = {**flask_env(), "FT_TEST_DATABASE_URL": f"sqlite:///{path}"}
    command = [sys.executable, "-m", "flask", "--app", "tests.app:create_app", "taches", "init-db"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM taches").fetchone() == (0,)


def test_help_is_the_docstring_and_hides_attempt(app_ctx: Flask) -> None:
    helped = invoke(app_ctx, "run", "--help")
    assert "Run task ID in this process." in helped.stdout
    assert "--force" in helped.stdout
    assert "--attempt" not in helped.stdout


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
