"""No control character a task or a user wrote reaches a terminal (issue 10, item 7).

Every command that prints stored text (``show``, ``list``, ``stats``, ``run -vv``,
``start -vv``) shows an ANSI/OSC escape, a ``\\r``, a C1 control or DEL as its
visible ``\\x..`` form; a traceback shown by ``show`` keeps its lines. Through
Flask's CLI runner, and real ``flask`` processes for ``run -vv`` and ``start -vv``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import update

from flask_taches import Status
from flask_taches.console import printable
from flask_taches.models import taches_table
from flask_taches.runner import run_one
from tests.app import taches
from tests.tasks import NOISE

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds before a `flask` process is considered stuck
#: What a terminal must never get from stored text: C0 (but newline), DEL, C1.
CONTROLS = [chr(c) for c in [*range(0x0A), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]]
SHOWN = printable(NOISE)  # the visible form

pytestmark = pytest.mark.taches_config(TACHES_FLUSH_INTERVAL=0.05)


def assert_printable(output: str) -> None:
    found = sorted({repr(c) for c in CONTROLS if c in output})
    assert found == [], output


def invoke(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["taches", *args])


def noisy_task(queue: str = f"q{NOISE}") -> int:
    """A task with NOISE in its signature, owner and queue; run, NOISE is in its logs too."""
    return taches.add(
        "tests.tasks:noisy", signature=f"sig {NOISE}", owner=f"owner {NOISE}", queue=queue
    )


def set_method(tache_id: int, method: str) -> None:
    with taches.store().write() as conn:
        conn.execute(
            update(taches_table).where(taches_table.c.id == tache_id).values(method=method)
        )


def flask(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TACHES_FLUSH_INTERVAL"] = "0.05"
    command = [sys.executable, "-m", "flask", "--app", "tests.app:create_app", "taches", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT, check=False
    )


# -- the escaping ----------------------------------------------------------------------------


def test_printable_escapes_every_control_character_once() -> None:
    assert printable("a\x1b[31mb\r\n\tc\x7f\x9b\u202e") == "a\\x1b[31mb\\r\\n\\tc\\x7f\\x9b\\u202e"
    assert printable("one\ntwo\x1b", newlines=True) == "one\ntwo\\x1b"
    assert printable(printable(NOISE)) == printable(NOISE)
    assert_printable(printable("".join(CONTROLS)))
    assert printable("café ✓ \\x1b") == "café ✓ \\x1b"


# -- show, list, stats through the CLI runner -------------------------------------------------


def test_show_escapes_what_the_task_and_its_creator_wrote(app_ctx: Flask) -> None:
    tache_id = noisy_task()
    assert run_one(tache_id) is Status.COMPLETED
    result = invoke(app_ctx, "show", str(tache_id))
    assert result.exit_code == 0, result.output
    assert_printable(result.output)
    for shown in (
        f"signature            sig {SHOWN}",
        f"owner                owner {SHOWN}",
        f"queue                q{SHOWN}",
        f"result               result {SHOWN}",
        f"message {SHOWN}",
        f"logger {SHOWN}",
        f"        line one {SHOWN}\n        line two\n",  # details keep their lines
    ):
        assert shown in result.output
    # The progress column is JSON, whose own escapes come first.
    assert printable(json.dumps(f"label {NOISE}", ensure_ascii=False)) in result.output


def test_show_keeps_a_tracebacks_lines(app_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:raises")
    run_one(tache_id)
    result = invoke(app_ctx, "show", str(tache_id))
    assert "        Traceback (most recent call last):\n" in result.output


def test_list_escapes_methods_and_signatures(app_ctx: Flask) -> None:
    tache_id = noisy_task()
    set_method(tache_id, f"tests.tasks:noisy{NOISE}")
    result = invoke(app_ctx, "list")
    assert result.exit_code == 0, result.output
    assert_printable(result.output)
    assert f"tests.tasks:noisy{SHOWN}  [sig {SHOWN}]" in result.output


def test_stats_escapes_queue_names(app_ctx: Flask) -> None:
    noisy_task()
    result = invoke(app_ctx, "stats")
    assert result.exit_code == 0, result.output
    assert_printable(result.output)
    assert printable(f"q{NOISE}"[:14]) in result.output


def test_an_error_line_escapes_the_input(app_ctx: Flask) -> None:
    result = invoke(app_ctx, "add", f"tests.tasks:{NOISE}")
    assert result.exit_code == 2
    assert_printable(result.output)
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


# -- run -vv and start -vv in real processes --------------------------------------------------


def test_run_vv_escapes_the_tasks_output(app_ctx: Flask) -> None:
    tache_id = noisy_task()
    done = flask("run", str(tache_id), "-vv")
    assert done.returncode == 0, done.stderr
    assert_printable(done.stdout + done.stderr)
    for shown in (
        f"message {SHOWN}",
        f"    line one {SHOWN}",
        f"logger {SHOWN}",
        f"debug {SHOWN}",
        f"label {SHOWN}",
        f"result result {SHOWN}",
    ):
        assert shown in done.stdout


def test_start_vv_escapes_the_managers_lines_and_the_tasks_output(app_ctx: Flask) -> None:
    tache_id = noisy_task(queue="default")
    refused = taches.add("tests.tasks:add", parametres={"a": 1})
    set_method(refused, f"tests.tasks:add{NOISE}")
    done = flask("start", "--loop", "1", "--sleep", "0.2", "--executor", "fork", "-vv")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_printable(done.stdout + done.stderr)
    assert f"claimed task {refused} (attempt 1): tests.tasks:add{SHOWN}" in done.stdout
    assert f"message {SHOWN}" in done.stdout
    assert f"task {tache_id}: COMPLETED" in done.stdout
