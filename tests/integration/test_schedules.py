"""Schedules through real ``flask taches start`` managers, on each database.

Overlapping managers (started one after the other, each living a few
seconds, as cron starts them) add exactly one task per slot; a manager back
after downtime adds the latest missed slot once (none with ``catch_up=False``,
none for a schedule it never saw); ``flask taches schedules --json`` tells the
slots, from a real ``flask`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import insert

from flask_taches.clock import utcnow
from flask_taches.models import schedules_table
from flask_taches.scheduling import Cron
from tests.manager_helpers import APP, ROOT, managers, rows, wait_for

pytestmark = pytest.mark.slow

ADD = "tests.tasks:add"
BOOT_DEADLINE = 60.0  # seconds for a manager to be up on a loaded machine
LIFETIME = "4"  # seconds each overlapping manager lives (--loop 4 --sleep 1)


def schedule_setting(**schedules: dict) -> str:
    return json.dumps(
        {name: {"method": ADD, "parametres": {"a": 1}, **s} for name, s in schedules.items()}
    )


def test_overlapping_managers_add_one_task_per_slot(db_ctx: Flask, tmp_path: Path) -> None:
    setting = schedule_setting(tick={"every": 1})
    with managers(tmp_path, TACHES_SCHEDULE=setting) as group:
        processes = []
        for started in range(1, 4):
            processes.append(group.start("--loop", LIFETIME, "--sleep", "1", "-v"))
            wait_for(
                f"{started} manager(s) up",
                lambda n=started: group.output().count(f"for {LIFETIME} s") >= n,
                BOOT_DEADLINE,
                group.output,
            )
        for process in processes:
            assert process.wait(BOOT_DEADLINE) == 0, group.output()
        output = group.output()
    run_ats = [r["run_at"] for r in rows().values() if r["signature"] == "tick"]
    assert len(run_ats) >= 3, output
    assert [slot for slot, n in Counter(run_ats).items() if n > 1] == [], output
    assert all(slot.microsecond == 0 for slot in run_ats)
    assert {r["status"] for r in rows().values()} <= {"COMPLETED", "RUNNING", "TO_RUN"}


def flask_schedules(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", APP, "taches", "schedules", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_after_downtime_the_latest_missed_slot_runs_once(db_ctx: Flask, tmp_path: Path) -> None:
    now = utcnow()
    # An hourly slot half an hour ago: missed, whatever the minute the test starts.
    cron = f"{(now.minute + 30) % 60} * * * *"
    missed = Cron.parse(cron, None).latest(now)
    assert missed is not None and now - missed > timedelta(minutes=25)
    long_ago = now - timedelta(days=2)
    with db_ctx.extensions["taches.state"].store.write() as conn:
        conn.execute(
            insert(schedules_table),
            [
                {"name": name, "created_at": long_ago, "last_slot": long_ago}
                for name in ("catch-up", "skip")
            ],
        )
    setting = schedule_setting(
        **{
            "catch-up": {"cron": cron},
            "skip": {"cron": cron, "catch_up": False},
            "new": {"cron": cron},
        }
    )
    with managers(tmp_path, TACHES_SCHEDULE=setting) as group:
        assert group.start("--loop", "2", "--sleep", "1", "-v").wait(BOOT_DEADLINE) == 0
        added = list(rows().values())
        assert [(r["signature"], r["run_at"]) for r in added] == [("catch-up", missed)], (
            group.output()
        )
        result = flask_schedules(group.env)
    assert result.returncode == 0, result.stderr
    listed = {view["name"]: view for view in json.loads(result.stdout)}
    assert set(listed) == {"catch-up", "skip", "new"}
    assert listed["catch-up"]["last_slot"] == missed.isoformat()
    assert listed["catch-up"]["last_id"] == added[0]["id"]
    assert listed["catch-up"]["next_slot"] == (missed + timedelta(hours=1)).isoformat()
    assert listed["skip"]["last_slot"] == long_ago.isoformat()
    assert listed["new"]["last_id"] is None
    assert listed["skip"]["when"] == f"cron {cron} (UTC)"


@pytest.mark.dialects("sqlite")
def test_a_manager_started_with_no_schedules_adds_no_slot(db_ctx: Flask, tmp_path: Path) -> None:
    setting = schedule_setting(tick={"every": 1})
    with managers(tmp_path, TACHES_SCHEDULE=setting) as group:
        lone = group.start("--no-schedules", "--loop", "3", "--sleep", "1", "-v")
        assert lone.wait(BOOT_DEADLINE) == 0, group.output()
        assert rows() == {}, group.output()
        # The same setting, without the flag: the slots come (the test can fail).
        assert group.start("--loop", "3", "--sleep", "1", "-v").wait(BOOT_DEADLINE) == 0
        assert {r["signature"] for r in rows().values()} == {"tick"}, group.output()


def test_a_schedule_outside_the_allowed_packages_stops_the_command_in_one_line(
    app: Flask, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        TACHES_SCHEDULE=json.dumps({"x": {"method": "json:dumps", "every": 60}}),
    )
    result = flask_schedules(env)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "Error: schedule 'x': 'json:dumps' is outside TACHES_ALLOWED_MODULES (tests)"
    )
