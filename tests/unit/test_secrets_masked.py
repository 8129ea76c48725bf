"""Hidden parameters never reach what the runner stores or prints (issue 10, item 1).

A task gets its ``parametres_caches`` as they are; everything it says while it
runs (its logs and details, its ``logger``, its progress label, its exception
and traceback, its result, the ``-vv`` console) is kept with each hidden value
masked. Run with ``run_one`` in this process, and in a real ``flask taches run
-vv`` process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_taches import Status
from flask_taches.models import taches_table
from flask_taches.runner import run_one
from flask_taches.runner.hiding import MARKER, Mask
from tests import tasks
from tests.app import taches

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "SUPERSECRET"
WAIT = 60.0  # seconds before a `flask taches run` process is considered stuck

pytestmark = pytest.mark.taches_config(TACHES_FLUSH_INTERVAL=0.05)


def stored(tache_id: int) -> dict[str, Any]:
    """The row as stored, without the one column allowed to hold the token."""
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
        row = dict(found.mappings().one())
    assert row.pop("parametres_caches") == {"token": TOKEN}
    return row


def as_text(row: dict[str, Any]) -> str:
    return json.dumps(row, default=str, ensure_ascii=False)


def add(method: str) -> int:
    return taches.add(f"tests.tasks:{method}", parametres_caches={"token": TOKEN})


def messages(row: dict[str, Any]) -> list[str]:
    return [entry["message"] for entry in row["logs"]]


# -- in this process -----------------------------------------------------------------------


def test_a_failing_task_stores_no_hidden_value(app_ctx: Flask) -> None:
    tache_id = add("leaks_hidden_then_fails")
    assert run_one(tache_id) is Status.FAILED
    row = stored(tache_id)
    assert TOKEN not in as_text(row)
    # The task got the real value: its fingerprint says so without saying it.
    assert f"fingerprint {tasks.fingerprint(TOKEN)}" in messages(row)
    error = row["logs"][-1]
    assert error["message"] == (f"ValueError: invalid literal for int() with base 10: '{MARKER}'")
    assert f"'{MARKER}'" in error["details"] and "Traceback" in error["details"]
    assert f"the token is {MARKER}" in messages(row)
    assert f"the logger says {MARKER}" in messages(row)
    assert row["logs"][1]["details"] == {"token": MARKER, "note": f"<{MARKER}>"}
    assert row["progress"]["label"] == f"working with {MARKER}"


def test_a_task_returning_a_hidden_value_stores_it_masked(app_ctx: Flask) -> None:
    tache_id = add("leaks_hidden_then_returns")
    assert run_one(tache_id) is Status.COMPLETED
    row = stored(tache_id)
    assert TOKEN not in as_text(row)
    assert row["result"] == {
        "token": MARKER,
        MARKER: [MARKER, f"x{MARKER}x"],
        "fingerprint": tasks.fingerprint(TOKEN),
    }
    caught = next(e for e in row["logs"] if e["message"].startswith("caught"))
    assert caught["message"] == f"caught: {MARKER}"
    assert f"RuntimeError: inner '{MARKER}'" in caught["details"]


def test_the_console_shows_no_hidden_value(
    app_ctx: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    tache_id = add("leaks_hidden_then_returns")
    assert run_one(tache_id, verbosity=2) is Status.COMPLETED
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert f"debug {MARKER}" in out.out and f"working with {MARKER}" in out.out


def test_the_apps_own_log_handlers_get_the_task_loggers_records_masked(app_ctx: Flask) -> None:
    """The records go on to ``flask_taches.tache``, where an app's handlers may print them."""
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    parent = logging.getLogger("flask_taches.tache")
    parent.addHandler(handler)
    try:
        assert run_one(add("leaks_hidden_then_fails")) is Status.FAILED
    finally:
        parent.removeHandler(handler)
    text = seen.getvalue()
    assert TOKEN not in text
    assert f"INFO the logger says {MARKER}" in text
    assert f"RuntimeError: inner '{MARKER}'" in text  # the traceback of logger.exception


# -- in a real `flask taches run -vv` process ------------------------------------------------


def flask_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "flask", "--app", "tests.app:create_app", "taches", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT, check=False
    )


@pytest.mark.parametrize("method", ["leaks_hidden_then_fails", "leaks_hidden_then_returns"])
def test_flask_taches_run_stores_and_prints_no_hidden_value(app_ctx: Flask, method: str) -> None:
    tache_id = add(method)
    done = flask_run("run", str(tache_id), "-vv")
    assert TOKEN not in done.stdout + done.stderr
    assert MARKER in done.stdout
    row = stored(tache_id)
    assert TOKEN not in as_text(row)
    assert tasks.fingerprint(TOKEN) in as_text(row)
    shown = flask_run("show", str(tache_id))
    assert shown.returncode == 0 and TOKEN not in shown.stdout


def test_a_forked_manager_child_stores_and_prints_no_hidden_value(app_ctx: Flask) -> None:
    ids = [add("leaks_hidden_then_fails"), add("leaks_hidden_then_returns")]
    done = flask_run("start", "--loop", "1", "--sleep", "0.2", "--executor", "fork", "-vv")
    assert done.returncode == 0, done.stdout + done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert f"the logger says {MARKER}" in done.stdout
    for tache_id in ids:
        row = stored(tache_id)
        assert row["status"] in (Status.FAILED, Status.COMPLETED)
        assert TOKEN not in as_text(row)
        assert tasks.fingerprint(TOKEN) in as_text(row)


# -- the rule ------------------------------------------------------------------------------------


def test_the_mask_hides_every_form_of_every_hidden_value() -> None:
    mask = Mask({"a": "it's", "b": {"deep": ["caf\u00e9-42", 123456]}, "c": 'x"y\nz'})
    assert mask.text("say it's") == f"say {MARKER}"
    assert mask.text(repr("it's")) == f'"{MARKER}"'
    assert mask.text(json.dumps("caf\u00e9-42")) == f'"{MARKER}"'
    assert mask.text(json.dumps('x"y\nz')) == f'"{MARKER}"'
    assert mask.text(repr('x"y\nz')) == f"'{MARKER}'"
    assert mask.value({"k": 123456, "n": [1, "a 123456 b"]}) == {
        "k": MARKER,
        "n": [1, f"a {MARKER} b"],
    }


def test_short_values_booleans_and_longer_numbers_are_left_alone() -> None:
    mask = Mask({"short": "abc", "flag": True, "one": 1, "pin": 4321, "none": None})
    text = "abc True 1 43210 0.4321 14321 pin=4321."
    assert mask.text(text) == f"abc True 1 43210 0.4321 14321 pin={MARKER}."
    assert mask.value([True, 1, 4321, 43210]) == [True, 1, MARKER, 43210]
    assert not Mask({"short": "abc"}) and not Mask(None)
