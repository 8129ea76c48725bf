"""Taking a schedule's slot: once, never older than the newest, on each database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import Flask

from flask_taches import Status
from flask_taches.scheduling import Defaults, Planned, declare
from tests.app import taches

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
DEFAULTS = Defaults(queue="default", max_attempts=1, timeout=None)


def plan(**options: object) -> Planned:
    return Planned(declare("nightly", "tests.tasks:add", every=60, **options), DEFAULTS)


def test_a_slot_is_taken_once_and_an_older_one_never_after(db_ctx: Flask) -> None:
    store = taches.store()
    planned = plan(parametres={"a": 1})
    store.schedule_rows(["nightly"], NOW - timedelta(days=1))
    first = store.take_slot("nightly", NOW, planned.row(NOW, NOW))
    assert first is not None
    assert store.take_slot("nightly", NOW, planned.row(NOW, NOW)) is None
    earlier = NOW - timedelta(minutes=1)
    assert store.take_slot("nightly", earlier, planned.row(earlier, NOW)) is None
    (row,) = store.schedule_rows(["nightly"], NOW).values()
    assert (row.last_slot, row.last_id) == (NOW, first)
    task = taches.get(first)
    assert (task.signature, task.run_at, task.owner, task.status) == (
        "nightly",
        NOW,
        None,
        Status.TO_RUN.value,
    )


def test_a_unique_schedule_adds_nothing_while_its_last_task_is_live(db_ctx: Flask) -> None:
    store = taches.store()
    planned = plan(parametres={"a": 1}, unique=True)
    store.schedule_rows(["nightly"], NOW - timedelta(days=1))
    first = store.take_slot("nightly", NOW, planned.row(NOW, NOW))
    later = NOW + timedelta(minutes=1)
    assert store.take_slot("nightly", later, planned.row(later, later)) == first
    assert taches.latest_ids(["nightly"]) == {"nightly": first}  # no second task
    (row,) = store.schedule_rows(["nightly"], NOW).values()
    assert row.last_slot == later  # the slot is taken: a manager will not try it again


def test_schedule_names_are_compared_exactly(db_ctx: Flask) -> None:
    store = taches.store()
    rows = store.schedule_rows(["Nightly", "nightly"], NOW - timedelta(days=1))
    assert sorted(rows) == ["Nightly", "nightly"]  # two rows, MariaDB included
    planned = plan(parametres={"a": 1})
    assert store.take_slot("Nightly", NOW, planned.row(NOW, NOW)) is not None
    assert store.take_slot("nightly", NOW, planned.row(NOW, NOW)) is not None
