"""The app's schedules as people read them: when, last slot added, next slot.

``flask taches schedules`` shows this list; it reads what the managers
recorded (``taches_schedules``) through the app's session, and computes the
next slot from the declaration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..clock import as_utc, utcnow
from ..models import Tache, schedules_table
from ..scheduling import Cron, Every, Planned
from ..state import app_state


def schedules() -> list[dict[str, Any]]:
    """One dict per schedule (its declaration, ``last_*``, ``next_slot``), by name."""
    state = app_state()
    planned = sorted(state.schedules(), key=lambda p: p.name)
    session = state.db.session
    rows = {
        row.name: row
        for row in session.execute(
            select(schedules_table).where(schedules_table.c.name.in_([p.name for p in planned]))
        )
    }
    last_ids = [row.last_id for row in rows.values() if row.last_id is not None]
    found = session.execute(select(Tache.id, Tache.status).where(Tache.id.in_(last_ids)))
    statuses = {row.id: row.status for row in found}
    now = utcnow()
    views = []
    for plan in planned:
        row = rows.get(plan.name)
        last_id = row.last_id if row is not None else None
        views.append(
            {
                **_declaration(plan),
                "last_slot": _iso(row.last_slot) if row is not None else None,
                "last_id": last_id,
                "last_status": statuses.get(last_id) if last_id is not None else None,
                "next_slot": _iso(plan.schedule.timing.next_after(now)),
            }
        )
    return views


def _declaration(plan: Planned) -> dict[str, Any]:
    schedule = plan.schedule
    timing = schedule.timing
    values = plan.row(utcnow(), utcnow())
    return {
        "name": schedule.name,
        "method": schedule.method,
        "when": timing.describe(),
        "cron": timing.expression if isinstance(timing, Cron) else None,
        "tz": timing.zone.key if isinstance(timing, Cron) else None,
        "every": timing.seconds if isinstance(timing, Every) else None,
        "signature": values["signature"],
        "queue": values["queue"],
        "priority": values["priority"],
        "max_attempts": values["max_attempts"],
        "timeout": values["timeout"],
        "catch_up": schedule.catch_up,
        "unique": schedule.unique,
        "parametres": values["parametres"],
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()
