"""Read-only figures for monitors, beside :mod:`.reports`' ``stats()``.

The oldest ready task per queue, the failures of a recent window, and the
durations of the tasks that ended recently (``/metrics``' histogram, the
``check`` command). All are read from the table, so every web process and
every command answers the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ..clock import utcnow
from ..status import FINISHED, Status
from . import statements as sql

if TYPE_CHECKING:
    from .base import Store

T = sql.T
_FINISHED = [s.value for s in FINISHED]
#: Most recently ended tasks the duration histogram reads (the newest first).
DURATION_SAMPLE = 10_000


def oldest_ready_by_queue(store: Store) -> dict[str, float]:
    """Seconds the oldest ready TO_RUN task of each queue has waited (queues with one)."""
    now = utcnow()
    with store.read() as conn:
        rows = conn.execute(
            select(T.queue, func.min(T.run_at)).where(sql.ready(now, None)).group_by(T.queue)
        ).all()
    return {queue: max(0.0, (now - oldest).total_seconds()) for queue, oldest in rows}


def failed_since(store: Store, since: datetime) -> int:
    """Tasks that ended FAILED since ``since``."""
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    (T.status == Status.FAILED.value) & (T.ended_at >= since)
                )
            ).scalar_one()
        )


def durations_since(store: Store, since: datetime) -> list[float]:
    """Seconds from start to end of the tasks that ended since ``since`` (a bounded sample)."""
    with store.read() as conn:
        rows = conn.execute(
            select(T.started_at, T.ended_at)
            .where(T.status.in_(_FINISHED) & (T.ended_at >= since) & T.started_at.is_not(None))
            .order_by(T.ended_at.desc())
            .limit(DURATION_SAMPLE)
        ).all()
    return [max(0.0, (ended - started).total_seconds()) for started, ended in rows]
