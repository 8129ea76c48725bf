"""The dashboard's figures, read as the current user: counts and the last hour.

Counts per status and the backlog per queue under the page's own filters, and
the tasks ended in each minute of the last hour (COMPLETED apart from the failures),
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

from sqlalchemy import func, select, union_all

from .. import auth
from ..clock import utcnow
from ..models import Tache
from ..state import app_state
from ..status import UNFINISHED, Status
from .sessions import end_idle_read

#: Minutes the chart covers, one bar each.
CHART_MINUTES = 60
#: What the chart counts as a failure: the attempts that ended badly on their own.
FAILURES = (Status.FAILED.value, Status.INTERRUPTED.value)
UNFINISHED_VALUES = [s.value for s in UNFINISHED]
#: Counts stop past this many (then shown "10,000+"): exact up to it, bounded beyond.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Counts:
    """How many tasks per status and per queue, each under the other filters."""

    by_status: dict[str, int]
    by_queue: dict[str, int]


@dataclass(frozen=True)
class Minute:
    """One bar of the chart."""

    start: datetime
    completed: int
    failed: int


def capped_count(conditions: Sequence[Any]) -> Any:
    """SQL: how many rows match, counted up to ``COUNT_CAP + 1`` at most (a scalar subquery)."""
    matching = select(Tache.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    return select(func.count()).select_from(matching).scalar_subquery()


def figures_allowed() -> bool:
    """Whether SQL alone can count what the user sees (not under an ``authorize`` hook)."""
    return auth.is_admin() or auth.visible_owners() is not None


def counts(
    shared: Sequence[Any], *, status_filter: Sequence[Any], queue_filter: Sequence[Any]
) -> Counts:
    """Tasks per status (under every filter but the status), unfinished tasks per queue.

    ``shared`` are the conditions of the other filters; ``status_filter`` and
    ``queue_filter`` the conditions of those two, each left out of its own count
    so that a count says what choosing it would show. A status's count stops at
    ``COUNT_CAP + 1`` (shown "10,000+"), read on its ``status, id`` index: a
    million COMPLETED tasks are not counted one by one on every page. A queue's count is its
    backlog, the WAITING, TO_RUN and RUNNING tasks (as a queue's length reads
    elsewhere): read on the status index, where all of a queue's history would
    be a scan of the whole table.
    """
    session = app_state().db.session
    end_idle_read(session)
    visible = _visible()
    per_status = [
        capped_count([Tache.status == s.value, *shared, *queue_filter, *visible]) for s in Status
    ]
    row = session.execute(select(*per_status)).one()
    by_status = {s.value: int(n) for s, n in zip(Status, row, strict=True)}
    # One range of the status index per unfinished status: with ``status IN (...)``
    # SQLite preferred the owner index for a viewer's ``owner IS NULL`` and read
    # every shared task ever run (0.1 s at 300,000 rows).
    backlog = union_all(
        *(
            select(Tache.queue, func.count().label("n"))
            .where(Tache.status == status, *shared, *status_filter, *visible)
            .group_by(Tache.queue)
            for status in UNFINISHED_VALUES
        )
    )
    by_queue: dict[str, int] = {}
    for queue, n in session.execute(backlog):
        by_queue[str(queue)] = by_queue.get(str(queue), 0) + int(n)
    return Counts(by_status=by_status, by_queue=dict(sorted(by_queue.items())))


def last_hour(shared: Sequence[Any], now: datetime | None = None) -> list[Minute]:
    """Tasks ended in each of the last ``CHART_MINUTES`` minutes, oldest first.

    One statement: the tasks of the charted statuses ended in the hour (a range
    of the ``status, ended_at`` index for each), counted per status and minute
    (the store's ``minutes_since``: each database cuts minutes its own way). The
    cost follows the tasks ended in the hour, never the size of the table; and
    the statement is a few clauses, not one subquery per bar to build and
    compile on every page.
    """
    end = (now or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=CHART_MINUTES)
    statuses = [Status.COMPLETED.value, *FAILURES]
    minute = app_state().store.minutes_since(Tache.ended_at, start).label("minute")
    query = (
        select(Tache.status, minute, func.count())
        .where(
            Tache.status.in_(statuses),
            Tache.ended_at >= start,
            Tache.ended_at < end,
            *shared,
            *_visible(),
        )
        .group_by(Tache.status, minute)
    )
    session = app_state().db.session
    end_idle_read(session)
    per_status = {status: [0] * CHART_MINUTES for status in statuses}
    for status, index, count in session.execute(query):
        if 0 <= int(index) < CHART_MINUTES:  # always, unless a clock stepped back
            per_status[str(status)][int(index)] += int(count)
    return [
        Minute(
            start=start + timedelta(minutes=i),
            completed=per_status[Status.COMPLETED.value][i],
            failed=sum(per_status[s][i] for s in FAILURES),
        )
        for i in range(CHART_MINUTES)
    ]


def _visible() -> list[Any]:
    condition = auth.visible_condition()
    return [] if condition is None else [condition]
