"""A schedule as declared: ``taches.schedule(...)``, ``@taches.periodic``, ``TACHES_SCHEDULE``.

Each declaration is checked when it is made, and refused in one line
(:class:`~flask_taches.exceptions.ConfigurationError`): a bad cron expression,
both ``cron`` and ``every`` or neither, an unknown time zone, an unknown option.
Whether the method is inside the allowed packages needs the application: the
manager and ``flask taches schedules`` check it when they read the schedules
(:mod:`.resolving`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ConfigurationError
from .timing import Cron, Every, Timing

#: The largest priority or attempt count an INTEGER column stores everywhere.
MAX_INT = 2**31 - 1
#: The keys of one ``TACHES_SCHEDULE`` entry (``method`` and ``cron`` or ``every`` among them).
OPTIONS = (
    "method",
    "cron",
    "every",
    "tz",
    "parametres",
    "signature",
    "queue",
    "priority",
    "timeout",
    "max_attempts",
    "catch_up",
    "unique",
)


@dataclass(frozen=True)
class Schedule:
    """One periodic task: what to add, and when."""

    name: str
    method: str
    timing: Timing
    parametres: dict[str, Any] = field(default_factory=dict)
    #: The tasks' signature; None: the schedule's name.
    signature: str | None = None
    queue: str | None = None
    priority: int = 0
    timeout: float | None = None
    max_attempts: int | None = None
    #: After downtime, add the latest missed slot (True) or skip it.
    catch_up: bool = True
    #: No slot's task while the previous one is still live.
    unique: bool = False

    @property
    def task_signature(self) -> str:
        return self.signature or self.name


def declare(
    name: str,
    method: str,
    *,
    cron: str | None = None,
    every: float | None = None,
    tz: str | None = None,
    parametres: Mapping[str, Any] | None = None,
    signature: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    timeout: float | None = None,
    max_attempts: int | None = None,
    catch_up: bool = True,
    unique: bool = False,
) -> Schedule:
    """A checked :class:`Schedule`, or a one-line ConfigurationError naming it."""
    try:
        return Schedule(
            name=_name(name),
            method=_text("method", method),
            timing=_timing(cron, every, tz),
            parametres=_parametres(parametres),
            signature=None if signature is None else _text("signature", signature),
            queue=None if queue is None else _text("queue", queue, 64),
            priority=_priority(priority),
            timeout=_timeout(timeout),
            max_attempts=None if max_attempts is None else _attempts(max_attempts),
            catch_up=_flag("catch_up", catch_up),
            unique=_flag("unique", unique),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"schedule {name!r}: {exc}") from None


def from_config(setting: Any) -> list[Schedule]:
    """The schedules of ``TACHES_SCHEDULE`` (``{name: {option: value}}``)."""
    if not setting:
        return []
    if not isinstance(setting, Mapping):
        raise ConfigurationError(
            f"TACHES_SCHEDULE must be a dict of {{name: {{...}}}}, not {type(setting).__name__}"
        )
    schedules = []
    for name, spec in setting.items():
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"TACHES_SCHEDULE[{name!r}] must be a dict of options")
        unknown = sorted(set(spec) - set(OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"TACHES_SCHEDULE[{name!r}]: unknown option(s) {', '.join(map(str, unknown))}"
            )
        if "method" not in spec:
            raise ConfigurationError(f"TACHES_SCHEDULE[{name!r}]: no method")
        schedules.append(declare(name, **spec))
    return schedules


class ScheduleBook:
    """The schedules declared in code, by name (one name, one schedule)."""

    def __init__(self) -> None:
        self._schedules: dict[str, Schedule] = {}

    def add(self, schedule: Schedule) -> None:
        refuse_same_name(self._schedules.values(), schedule)
        self._schedules[schedule.name] = schedule

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self._schedules.values())

    def __len__(self) -> int:
        return len(self._schedules)


def refuse_same_name(known: Any, schedule: Schedule) -> None:
    """Two schedules may not share a name (nor differ only by case: MariaDB's keys would)."""
    for other in known:
        if other.name.casefold() == schedule.name.casefold():
            raise ConfigurationError(f"schedule {schedule.name!r} is declared twice")


def _name(name: Any) -> str:
    return _text("name", name)


def _text(what: str, value: Any, longest: int = 255) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} must be a non-empty string, not {value!r}")
    if len(value) > longest:
        raise ConfigurationError(f"{what} is longer than {longest} characters")
    return value


def _timing(cron: str | None, every: Any, tz: str | None) -> Timing:
    if (cron is None) == (every is None):
        raise ConfigurationError("give either cron=... or every=SECONDS, not both or neither")
    if cron is not None:
        return Cron.parse(_text("cron", cron), tz)
    if tz is not None:
        raise ConfigurationError("tz is for cron schedules; every=SECONDS needs none")
    return Every.parse(every)


def _parametres(parametres: Mapping[str, Any] | None) -> dict[str, Any]:
    if parametres is None:
        return {}
    if not isinstance(parametres, Mapping) or not all(isinstance(k, str) for k in parametres):
        raise ConfigurationError("parametres must be a dict with string keys")
    try:
        json.dumps(dict(parametres), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"parametres must be JSON: {exc}") from None
    return dict(parametres)


def _integer(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{what} must be an integer, not {value!r}")
    return value


def _priority(value: Any) -> int:
    if abs(_integer("priority", value)) > MAX_INT:
        raise ConfigurationError(f"priority must fit in 32 bits, not {value!r}")
    return int(value)


def _attempts(value: Any) -> int:
    if not 1 <= _integer("max_attempts", value) <= MAX_INT:
        raise ConfigurationError(f"max_attempts must be from 1 to {MAX_INT}, not {value!r}")
    return int(value)


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def _flag(what: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what} must be True or False, not {value!r}")
    return value
