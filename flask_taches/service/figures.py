"""The dashboard's figures, read as the current user: counts and the last hour.

Counts per status and per queue under the page's own filters, and the tasks
ended in each minute of the last hour (COMPLETED apart from the failures),
read from the database so that every web process draws the same chart.
Every read is limited in SQL to the tasks the user may see; under an
``authorize`` hook, which decides row by row, no figure can be exact without
reading every row, so :func:`figures_allowed` says there are none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from .. import auth
from ..clock import as_utc, utcnow
from ..models import Tache
from ..state import app_state
from ..status import Status
from .sessions import end_idle_read

#: Minutes the chart covers, one bar each.
CHART_MINUTES = 60
#: What the chart counts as a failure: the attempts that ended badly on their own.
FAILURES = (Status.FAILED.value, Status.INTERRUPTED.value)


@dataclass(frozen=True)
class Counts:
    """How many tasks per status and per queue, each under the other filters."""

    by_status: dict[str, int]
    by_queue: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class Minute:
    """One bar of the chart."""

    start: datetime
    completed: int
    failed: int


def figures_allowed() -> bool:
    """Whether SQL alone can count what the user sees (not under an ``authorize`` hook)."""
    return auth.is_admin() or auth.visible_owners() is not None


def counts(
    shared: Sequence[Any], *, status_filter: Sequence[Any], queue_filter: Sequence[Any]
) -> Counts:
    """Tasks per status (under every filter but the status) and per queue (all but the queue).

    ``shared`` are the conditions of the other filters; ``status_filter`` and
    ``queue_filter`` the conditions of those two, each left out of its own count
    so that a count says what choosing it would show.
    """
    session = app_state().db.session
    end_idle_read(session)
    visible = _visible()
    by_status = {s.value: 0 for s in Status}
    status_rows = session.execute(
        select(Tache.status, func.count())
        .where(*shared, *queue_filter, *visible)
        .group_by(Tache.status)
    )
    for status, n in status_rows:
        by_status[str(status)] = int(n)
    queue_rows = session.execute(
        select(Tache.queue, func.count())
        .where(*shared, *status_filter, *visible)
        .group_by(Tache.queue)
    )
    by_queue = dict(sorted((str(q), int(n)) for q, n in queue_rows))
    return Counts(by_status=by_status, by_queue=by_queue)


def last_hour(shared: Sequence[Any], now: datetime | None = None) -> list[Minute]:
    """Tasks ended in each of the last ``CHART_MINUTES`` minutes, oldest first.

    Reads only the end time and status of the tasks ended in that hour (the
    ``status, ended_at`` index), and counts them per minute here: a minute's
    bucket is portable arithmetic, where SQL would need each database's own
    date functions.
    """
    now = (now or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = now - timedelta(minutes=CHART_MINUTES)
    session = app_state().db.session
    end_idle_read(session)
    rows = session.execute(
        select(Tache.status, Tache.ended_at).where(
            Tache.status.in_([Status.COMPLETED.value, *FAILURES]),
            Tache.ended_at >= since,
            *shared,
            *_visible(),
        )
    )
    completed = [0] * CHART_MINUTES
    failed = [0] * CHART_MINUTES
    for status, ended_at in rows:
        if ended_at is None:
            continue
        index = int((as_utc(ended_at) - since).total_seconds() // 60)
        if 0 <= index < CHART_MINUTES:
            (completed if status == Status.COMPLETED.value else failed)[index] += 1
    return [
        Minute(since + timedelta(minutes=i), completed[i], failed[i]) for i in range(CHART_MINUTES)
    ]


def _visible() -> list[Any]:
    condition = auth.visible_condition()
    return [] if condition is None else [condition]
