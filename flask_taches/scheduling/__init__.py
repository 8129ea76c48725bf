"""Periodic tasks: declarations, when their slots fall, which one is due.

Pure, and beside the rooms: the manager (:mod:`flask_taches.worker.scheduling`)
and ``flask taches schedules`` (:mod:`flask_taches.service.schedules`) read the
schedules through :func:`~.resolving.planned`; the store
(:mod:`flask_taches.store.slots`) adds each slot's task once.
"""

from __future__ import annotations

from .declarations import Schedule, ScheduleBook, declare, from_config
from .resolving import Defaults, Planned, planned
from .slots import LATE_AFTER, due_slot
from .timing import Cron, Every, Timing

__all__ = [
    "LATE_AFTER",
    "Cron",
    "Defaults",
    "Every",
    "Planned",
    "Schedule",
    "ScheduleBook",
    "Timing",
    "declare",
    "due_slot",
    "from_config",
    "planned",
]
