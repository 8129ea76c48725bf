"""The store's read-only figures: counts, queue age, throughput, latest per signature."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from ..clock import utcnow
from ..status import FINISHED, Status
from . import statements as sql

if TYPE_CHECKING:
    from .base import Store

T = sql.T
_FINISHED = [s.value for s in FINISHED]


class ReportVerbs:
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    def stats(self, windows: Sequence[int] = (1, 5, 15)) -> dict[str, Any]:
        """Counts by status and queue, oldest ready TO_RUN age, tasks ended per window.

        ``windows`` are in minutes; ``throughput`` gives, for each, how many tasks
        ended in it and the rate per minute.
        """
        store: Store = self  # type: ignore[assignment]
        now = utcnow()
        with store.read() as conn:
            counts = conn.execute(
                select(T.status, T.queue, func.count()).group_by(T.status, T.queue)
            ).all()
            oldest = conn.execute(
                select(func.min(T.run_at)).where(sql.ready(now, None))
            ).scalar_one()
            ended: dict[int, dict[str, int]] = {}
            for minutes in windows:
                since = now - timedelta(minutes=minutes)
                rows = conn.execute(
                    select(T.status, func.count())
                    .where((T.ended_at >= since) & T.status.in_(_FINISHED))
                    .group_by(T.status)
                ).all()
                ended[minutes] = {status: int(n) for status, n in rows}
        by_status: dict[str, int] = {s.value: 0 for s in Status}
        by_queue: dict[str, dict[str, int]] = {}
        for status, queue, n in counts:
            by_status[status] = by_status.get(status, 0) + int(n)
            by_queue.setdefault(queue, {})[status] = int(n)
        return {
            "at": now.isoformat(),
            "by_status": by_status,
            "by_queue": by_queue,
            "oldest_to_run_age": (now - oldest).total_seconds() if oldest is not None else None,
            "throughput": [
                {
                    "minutes": minutes,
                    "ended": sum(ended[minutes].values()),
                    "by_status": ended[minutes],
                    "per_minute": round(sum(ended[minutes].values()) / minutes, 2),
                }
                for minutes in windows
            ],
        }

    @staticmethod
    def latest_ids(conn: Connection, signatures: Sequence[str]) -> dict[str, int]:
        """The newest task id of each signature (the bundle's "latest task" view)."""
        if not signatures:
            return {}
        rows = conn.execute(
            select(T.signature, func.max(T.id))
            .where(T.signature.in_(list(signatures)))
            .group_by(T.signature)
        ).all()
        return {signature: tache_id for signature, tache_id in rows}
