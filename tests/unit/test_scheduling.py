"""Schedules: declarations refused in one line, slots in time zones, the catch-up rule.

The clock is fixed: each test says what time it is. The DST tests also drive
a real :class:`~flask_taches.worker.scheduling.Scheduler` on a real SQLite
store through the night of the change, one look every ten minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import select

from flask_taches import TachesExtension
from flask_taches.exceptions import ConfigurationError, MethodNotFound
from flask_taches.models import taches_table
from flask_taches.scheduling import LATE_AFTER, Cron, Every, declare, due_slot, from_config
from flask_taches.state import app_state
from flask_taches.worker.scheduling import Scheduler

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- declarations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "schedule 'n': bad cron expression '61 * * * *': Bad minute"),
        ({"cron": "0 3 * * *", "every": 60}, "schedule 'n': give either cron=... or every="),
        ({}, "schedule 'n': give either cron=... or every="),
        ({"cron": "0 3 * * *", "tz": "Europe/Pariss"}, "schedule 'n': unknown time zone"),
        ({"every": 60, "tz": "Europe/Paris"}, "schedule 'n': tz is for cron schedules"),
        ({"every": 0.5}, "schedule 'n': every must be at least 1 second"),
        ({"every": "60"}, "schedule 'n': every must be a number of seconds"),
        ({"every": 60, "parametres": {"x": object()}}, "schedule 'n': parametres must be JSON"),
        ({"every": 60, "max_attempts": 0}, "schedule 'n': max_attempts must be from 1 to"),
        ({"every": 60, "priority": 2**31}, "schedule 'n': priority must fit in 32 bits"),
        ({"every": 60, "catch_up": "no"}, "schedule 'n': catch_up must be True or False"),
    ],
)
def test_a_bad_declaration_is_refused_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        declare("n", "tests.tasks:add", **options)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_the_setting_is_checked_entry_by_entry() -> None:
    assert [s.name for s in from_config({"a": {"method": "tests.tasks:add", "every": 5}})] == ["a"]
    for setting, message in [
        ("nightly", "TACHES_SCHEDULE must be a dict"),
        ({"a": {"method": "tests.tasks:add", "every": 5, "when": 1}}, "unknown option(s) when"),
        ({"a": {"every": 5}}, "TACHES_SCHEDULE['a']: no method"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            from_config(setting)


def test_two_schedules_may_not_share_a_name() -> None:
    taches = TachesExtension()
    taches.schedule("Nightly", "tests.tasks:add", every=60)
    with pytest.raises(ConfigurationError, match="schedule 'nightly' is declared twice"):
        taches.schedule("nightly", "tests.tasks:add", cron="0 3 * * *")


def nightly_report() -> None:
    """A task function at module level, as ``@taches.periodic`` needs."""


def test_periodic_names_the_schedule_after_the_function() -> None:
    taches = TachesExtension()
    assert taches.periodic("0 3 * * *", tz="Europe/Paris", queue="q")(nightly_report) is (
        nightly_report
    )
    taches.periodic(every=3600, name="hourly")(nightly_report)
    nightly, hourly = taches.hooks.schedules
    assert nightly.name == nightly.method == "tests.unit.test_scheduling:nightly_report"
    assert (nightly.timing, nightly.queue) == (Cron.parse("0 3 * * *", "Europe/Paris"), "q")
    assert (hourly.name, hourly.timing, hourly.task_signature) == ("hourly", Every(3600), "hourly")


SHARED = TachesExtension()


@SHARED.periodic(every=3600)
@SHARED.task(queue="reports", max_attempts=3)
def hourly_report() -> None:
    """A task whose schedule takes its options."""


def test_periodic_above_task_takes_the_tasks_options_as_defaults() -> None:
    (schedule,) = SHARED.hooks.schedules
    assert (schedule.method, schedule.queue, schedule.max_attempts) == (
        "tests.unit.test_scheduling:hourly_report",
        "reports",
        3,
    )
    SHARED.schedule("overridden", hourly_report, every=60, queue="other")
    assert [s.queue for s in SHARED.hooks.schedules] == ["reports", "other"]


def test_periodic_refuses_a_function_no_manager_can_import() -> None:
    def inner() -> None: ...

    with pytest.raises(MethodNotFound, match="no importable name"):
        TachesExtension().periodic(every=60)(inner)


@pytest.mark.taches_config(
    TACHES_SCHEDULE={"outside": {"method": "flask_taches.clock:utcnow", "every": 60}}
)
def test_a_method_outside_the_allowed_packages_is_refused(app_ctx: Flask) -> None:
    with pytest.raises(ConfigurationError) as refused:
        app_state().schedules()
    assert str(refused.value) == (
        "schedule 'outside': 'flask_taches.clock:utcnow' is outside TACHES_ALLOWED_MODULES (tests)"
    )


@pytest.mark.taches_config(
    TACHES_SCHEDULE={
        "typo": {"method": "tests.tasks:writes_pid", "every": 60, "parametres": {"pth": "/tmp/x"}}
    }
)
def test_a_parameter_a_slot_would_lack_is_refused_when_the_schedules_are_read(
    app_ctx: Flask,
) -> None:
    # A typo in parametres would otherwise fail every slot's task, night after night.
    with pytest.raises(ConfigurationError) as refused:
        app_state().schedules()
    assert str(refused.value).startswith(
        "schedule 'typo': tests.tasks:writes_pid: nothing provides its parameter 'path'"
    )


@pytest.mark.taches_config(
    TACHES_SCHEDULE={
        "fine": {"method": "tests.tasks:writes_pid", "every": 60, "parametres": {"path": "/x"}}
    }
)
def test_a_schedule_whose_parametres_provide_all_is_planned(app_ctx: Flask) -> None:
    (planned,) = app_state().schedules()
    assert planned.schedule.parametres == {"path": "/x"}


# -- slots -----------------------------------------------------------------------------------


def test_every_counts_from_the_epoch_so_all_managers_agree() -> None:
    every = Every.parse(60)
    assert every.latest(utc(2026, 12, 1, 10, 0, 59)) == utc(2026, 12, 1, 10, 0)
    assert every.latest(utc(2026, 12, 1, 10, 0)) == utc(2026, 12, 1, 10, 0)
    assert every.next_after(utc(2026, 12, 1, 10, 0)) == utc(2026, 12, 1, 10, 1)


def test_a_cron_slot_is_due_at_its_minute_and_after() -> None:
    cron = Cron.parse("0 3 * * *", "Europe/Paris")
    assert cron.latest(utc(2026, 12, 1, 2, 0)) == utc(2026, 12, 1, 2, 0)  # 03:00 CET
    assert cron.latest(utc(2026, 12, 1, 1, 59, 59)) == utc(2026, 11, 30, 2, 0)
    assert cron.next_after(utc(2026, 12, 1, 2, 0)) == utc(2026, 12, 2, 2, 0)


def test_only_the_latest_missed_slot_is_due_after_downtime() -> None:
    every = Every.parse(60)
    seen = utc(2026, 12, 1, 8, 0)
    now = utc(2026, 12, 1, 10, 0, 30)  # two hours down: 120 slots missed
    due = due_slot(every, now=now, first_seen=seen, done_through=seen, catch_up=True)
    assert due == utc(2026, 12, 1, 10, 0)
    assert due_slot(every, now=now, first_seen=seen, done_through=due, catch_up=True) is None


def test_catch_up_false_skips_a_missed_slot_but_not_one_on_time() -> None:
    cron = Cron.parse("0 3 * * *", None)
    seen = utc(2026, 11, 1)
    late = utc(2026, 12, 1, 3, 0) + LATE_AFTER + timedelta(seconds=1)
    assert due_slot(cron, now=late, first_seen=seen, done_through=None, catch_up=False) is None
    assert due_slot(cron, now=late, first_seen=seen, done_through=None, catch_up=True)
    on_time = utc(2026, 12, 1, 3, 0, 5)
    assert due_slot(cron, now=on_time, first_seen=seen, done_through=None, catch_up=False) == utc(
        2026, 12, 1, 3
    )


def test_a_new_schedule_does_not_fire_for_its_past() -> None:
    cron = Cron.parse("0 3 * * *", None)
    now = utc(2026, 12, 1, 10)
    assert due_slot(cron, now=now, first_seen=now, done_through=None, catch_up=True) is None


# -- daylight saving, through a real scheduler and store ---------------------------------------


class FixedClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def slots_added(app: Flask, start: datetime, hours: int) -> Iterator[datetime]:
    """Run a scheduler every 10 minutes of a fixed clock; the run_at of each task added."""
    state = app_state(app)
    clock = FixedClock(start)
    planned = [p for p in state.schedules() if p.name == "dst"]
    scheduler = Scheduler(state.store, planned, clock=clock)
    for _ in range(hours * 6 + 1):
        scheduler.add_due()
        clock.now += timedelta(minutes=10)
    with state.store.read() as conn:
        query = select(taches_table.c.run_at).order_by(taches_table.c.id)
        yield from (row.run_at for row in conn.execute(query))


#: 29 March 2026, 02:00 CET jumps to 03:00 CEST: there is no 02:30, so it runs once
#: at 03:00. 25 October 2026, 03:00 CEST goes back to 02:00 CET: 02:30 comes twice,
#: and runs once, the first time.
DST_NIGHTS = {
    "spring-forward": (
        utc(2026, 3, 27, 12),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
    ),
    "fall-back": (
        utc(2026, 10, 23, 12),
        [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
    ),
}


@pytest.mark.taches_config(
    TACHES_SCHEDULE={
        "dst": {"method": "tests.tasks:add", "cron": "30 2 * * *", "tz": "Europe/Paris"}
    }
)
@pytest.mark.parametrize("night", sorted(DST_NIGHTS))
def test_a_daily_slot_runs_once_a_day_across_a_daylight_saving_change(
    app_ctx: Flask, night: str
) -> None:
    start, expected = DST_NIGHTS[night]
    assert list(slots_added(app_ctx, start, hours=72)) == expected


@pytest.mark.taches_config(
    TACHES_SCHEDULE={
        "nightly": {"method": "tests.tasks:add", "cron": "0 3 * * *", "tz": "Europe/Paris"}
    }
)
def test_the_schedules_command_lists_when_last_and_next(app_ctx: Flask) -> None:
    result = app_ctx.test_cli_runner().invoke(args=["taches", "schedules"])
    assert result.exit_code == 0, result.output
    header, line = result.output.splitlines()
    assert header.split() == ["NAME", "LAST", "(UTC)", "TASK", "NEXT", "(UTC)", "WHEN"]
    assert line.split()[:3] == ["nightly", "-", "-"]
    assert line.endswith("cron 0 3 * * * (Europe/Paris)  tests.tasks:add")


def test_the_schedules_command_says_when_there_is_none(app_ctx: Flask) -> None:
    result = app_ctx.test_cli_runner().invoke(args=["taches", "schedules"])
    assert (result.exit_code, result.output) == (0, "no schedule\n")
