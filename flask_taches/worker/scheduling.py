"""The manager's part in periodic tasks: add each due slot's task, once for all managers.

Every running manager does this, so a schedule keeps going as long as one
manager runs, whichever host it is on. Between slots it costs nothing: the
manager knows when the next slot falls and touches the database only then.
At a slot, each manager asks the store to take it
(:meth:`~flask_taches.store.slots.SlotVerbs.take_slot`); the database lets
one of them add the task. Which slot is due, catch-up after downtime
included, is :func:`flask_taches.scheduling.due_slot`'s rule.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from ..clock import utcnow
from ..scheduling import Planned, due_slot
from ..store import Store
from .log import logger

#: Seconds between looks when no slot is near: a clock change is caught this late at most.
LOOK_AT_LEAST_EVERY = 60.0
#: Seconds before trying again after a database error.
RETRY_AFTER = 1.0


class Scheduler:
    """Adds the due slots of ``schedules``; :attr:`due` is when to call :meth:`add_due`."""

    def __init__(
        self, store: Store, schedules: Sequence[Planned], clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.schedules = list(schedules)
        self.clock = clock
        #: Monotonic time of the next look (never, without schedules).
        self.due = 0.0 if self.schedules else float("inf")
        #: Per schedule: when it was first seen, and the latest slot handled.
        self._first_seen: dict[str, datetime] = {}
        self._done_through: dict[str, datetime | None] = {}

    def add_due(self) -> int:
        """Add the task of every due slot; how many tasks this manager added."""
        now = self.clock()
        started = time.monotonic()
        try:
            if not self._first_seen:
                self._read_rows(now)
            added = sum(self._add_slot(planned, now) for planned in self.schedules)
        except SQLAlchemyError as exc:
            logger.error("schedules: %s", exc, extra={"action": "schedule_error", "tache_id": None})
            self.due = started + RETRY_AFTER
            return 0
        self.due = started + self._seconds_to_next(now)
        return added

    def _read_rows(self, now: datetime) -> None:
        rows = self.store.schedule_rows([planned.name for planned in self.schedules], now)
        for name, row in rows.items():
            self._first_seen[name] = row.created_at
            self._done_through[name] = row.last_slot

    def _add_slot(self, planned: Planned, now: datetime) -> int:
        schedule = planned.schedule
        slot = due_slot(
            schedule.timing,
            now=now,
            # A row no read returned (made meanwhile): seen now, nothing done yet.
            first_seen=self._first_seen.setdefault(planned.name, now),
            done_through=self._done_through.get(planned.name),
            catch_up=schedule.catch_up,
        )
        if slot is None:
            return 0
        tache_id = self.store.take_slot(planned.name, slot, planned.row(slot, now))
        self._done_through[planned.name] = slot  # by us or by another manager
        if tache_id is None:
            return 0
        logger.info(
            "schedule %s: task %s for %s",
            planned.name,
            tache_id,
            slot.isoformat(),
            extra={"action": "schedule", "tache_id": tache_id},
        )
        return 1

    def _seconds_to_next(self, now: datetime) -> float:
        upcoming = [planned.schedule.timing.next_after(now) for planned in self.schedules]
        waits = [(slot - now).total_seconds() for slot in upcoming if slot is not None]
        return max(0.0, min([LOOK_AT_LEAST_EVERY, *waits]))
