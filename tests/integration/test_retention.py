"""Retention: ``TACHES_RETENTION`` applied by running managers, once, in batches, files too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import ConfigurationError, Status
from flask_taches.clock import utcnow
from flask_taches.store import managers as registry
from flask_taches.worker.retention import parse_retention
from tests.app import db, taches
from tests.manager_helpers import Managers, managers, rows, wait_for
from tests.store.helpers import set_columns

DEADLINE = 30.0


@pytest.fixture
def group(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    settings = {
        "TACHES_RETENTION": "COMPLETED=1,CANCELLED=0.5",
        "TACHES_RETENTION_BATCH": "2",
        "TACHES_RETENTION_INTERVAL": "3600",
    }
    with managers(tmp_path, **settings) as started:
        yield started


def ended(status: Status, days_ago: float, *, with_file: bool = False) -> int:
    tache_id = taches.add("tests.manager_tasks:noop")
    db.session.remove()
    at = utcnow() - timedelta(days=days_ago)
    set_columns(tache_id, status=status.value, started_at=at, ended_at=at, attempts=1)
    if with_file:
        folder = taches.folder() / str(tache_id)
        folder.mkdir(parents=True)
        (folder / "report.csv").write_text("a,b\n")
    return tache_id


def beaten(count: int) -> bool:
    found = registry.live(taches.store(), 60)
    return len(found) == count and all(m["seen_at"] > m["started_at"] for m in found)


@pytest.mark.slow
def test_two_managers_apply_it_once_in_batches_and_remove_the_files(group: Managers) -> None:
    old = [ended(Status.COMPLETED, 2, with_file=True) for _ in range(5)]
    old.append(ended(Status.CANCELLED, 1))
    kept = [
        ended(Status.COMPLETED, 0.5),  # younger than its day
        ended(Status.FAILED, 400, with_file=True),  # a status the policy does not name
    ]
    group.start("--forever", "-v")
    group.start("--forever", "-v")

    wait_for("the old tasks deleted", lambda: set(rows()) == set(kept), DEADLINE, group.output)
    # Their files go right after each batch's transaction.
    folders = [taches.folder() / str(tache_id) for tache_id in old]
    wait_for("their files removed", lambda: not any(f.exists() for f in folders), DEADLINE)
    assert (taches.folder() / str(kept[1]) / "report.csv").exists()
    # Both have passed their first retention pass once both beat after joining.
    wait_for("both managers beat", lambda: beaten(2), DEADLINE, group.output)
    reports = re.findall(
        r"retention: (\d+) finished task\(s\) deleted in (\d+) batch", group.output()
    )
    # One manager did it, in batches of 2 (3 of COMPLETED, 1 of CANCELLED); the other did nothing.
    assert reports == [("6", "4")], group.output()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("completed=7, FAILED=30", {"COMPLETED": 7.0, "FAILED": 30.0}),
        (["CANCELLED=0.5"], {"CANCELLED": 0.5}),
        ({"interrupted": 3}, {"INTERRUPTED": 3.0}),
    ],
)
def test_the_setting_reads_days_per_status(value: object, expected: dict[str, float]) -> None:
    assert parse_retention(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("COMPLETED", "is not STATUS=DAYS"),
        ("RUNNING=3", "is not a finished status"),
        ("FAILED=soon", "is not a number of days"),
        ({"FAILED": -1}, "must not be negative"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line(value: object, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why) as caught:
        parse_retention(value)
    assert "\n" not in str(caught.value) and "TACHES_RETENTION=" in str(caught.value)
