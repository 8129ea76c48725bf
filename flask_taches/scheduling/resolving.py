"""The schedules of one application, ready for a manager: checked, with their row.

:func:`planned` merges the schedules declared in code with ``TACHES_SCHEDULE``,
checks each method against the allowed packages (it must import, as for
``add()``) and its ``parametres`` against what the method requires, and
fills the options left out with the application's defaults, so a manager
adds a slot's task without any further check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..exceptions import ConfigurationError, InvalidTache
from ..status import Status
from .declarations import Schedule, from_config, refuse_same_name


@dataclass(frozen=True)
class Defaults:
    """The options a schedule left out take the application's settings."""

    queue: str
    max_attempts: int
    timeout: float | None


@dataclass(frozen=True)
class Planned:
    """A schedule whose method was checked, and the values of its tasks."""

    schedule: Schedule
    defaults: Defaults

    @property
    def name(self) -> str:
        return self.schedule.name

    def row(self, slot: datetime, now: datetime) -> dict[str, Any]:
        """The column values of the task for ``slot`` (its ``run_at``)."""
        schedule = self.schedule
        defaults = self.defaults
        timeout = schedule.timeout if schedule.timeout is not None else defaults.timeout
        return {
            "method": schedule.method,
            "parametres": dict(schedule.parametres),
            "parametres_caches": None,
            "signature": schedule.task_signature,
            "owner": None,
            "status": Status.TO_RUN.value,
            "logs": [],
            "created_at": now,
            "run_at": slot,
            "priority": schedule.priority,
            "queue": schedule.queue or defaults.queue,
            "attempts": 0,
            "max_attempts": schedule.max_attempts or defaults.max_attempts,
            "timeout": timeout,
            "unique_key": schedule.task_signature if schedule.unique else None,
        }


def planned(
    declared: Iterable[Schedule],
    setting: Any,
    defaults: Defaults,
    check_method: Callable[[str, dict[str, Any]], None],
) -> list[Planned]:
    """Every schedule of the app, checked; a one-line ConfigurationError otherwise."""
    schedules: list[Schedule] = []
    for schedule in [*declared, *from_config(setting)]:
        refuse_same_name(schedules, schedule)
        try:
            check_method(schedule.method, schedule.parametres)
        except InvalidTache as exc:
            raise ConfigurationError(f"schedule {schedule.name!r}: {exc}") from None
        schedules.append(schedule)
    return [Planned(schedule, defaults) for schedule in schedules]
