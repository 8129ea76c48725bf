"""When a schedule's slots fall: a cron expression in a time zone, or every N seconds.

A slot is a moment, the same for every manager that computes it: a cron
expression's fire times (read by cronsim, time zones and daylight saving
included: a time skipped in spring fires at the next valid minute, a time seen
twice in autumn fires once), or the multiples of ``every`` seconds since the
Unix epoch. Everything here is pure: the caller gives the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..clock import as_utc
from ..exceptions import ConfigurationError

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: cronsim counts whole minutes, and its backward walk starts strictly before its moment.
_JUST_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True)
class Cron:
    """The fire times of a five-field cron expression, read in ``zone``."""

    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, tz: str | None) -> Cron:
        zone = time_zone(tz or "UTC")
        try:
            CronSim(expression, datetime.now(zone))
        except CronSimError as exc:
            raise ConfigurationError(f"bad cron expression {expression!r}: {exc}") from None
        return cls(expression, zone)

    def latest(self, now: datetime) -> datetime | None:
        """The last fire time at or before ``now`` (UTC), None if there is none."""
        return self._first(CronSim(self.expression, self._local(now) + _JUST_AFTER, reverse=True))

    def next_after(self, now: datetime) -> datetime | None:
        """The first fire time after ``now`` (UTC)."""
        return self._first(CronSim(self.expression, self._local(now)))

    def describe(self) -> str:
        return f"cron {self.expression} ({self.zone.key})"

    def _local(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(self.zone)

    @staticmethod
    def _first(times: CronSim) -> datetime | None:
        try:
            return as_utc(next(times))
        except StopIteration:  # a date that never comes, such as 30 February
            return None


@dataclass(frozen=True)
class Every:
    """A slot every ``seconds``, counted from the Unix epoch (so all managers agree)."""

    seconds: float

    @classmethod
    def parse(cls, seconds: object) -> Every:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ConfigurationError(f"every must be a number of seconds, not {seconds!r}")
        if not math.isfinite(seconds) or seconds < 1:
            raise ConfigurationError(f"every must be at least 1 second, not {seconds!r}")
        return cls(float(seconds))

    def latest(self, now: datetime) -> datetime:
        elapsed = (as_utc(now) - EPOCH).total_seconds()
        return EPOCH + timedelta(seconds=math.floor(elapsed / self.seconds) * self.seconds)

    def next_after(self, now: datetime) -> datetime:
        return self.latest(now) + timedelta(seconds=self.seconds)

    def describe(self) -> str:
        return f"every {self.seconds:g} s"


Timing = Cron | Every


def time_zone(name: str) -> ZoneInfo:
    """The zone called ``name``, or a one-line error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigurationError(f"unknown time zone {name!r}") from None
