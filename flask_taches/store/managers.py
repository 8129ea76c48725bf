"""The managers registry: the ``taches_managers`` rows, one per live manager.

A manager inserts its row when it starts (:func:`join`), refreshes ``seen_at``
and its running count while it lives (:func:`beat`), and deletes it on a clean
exit (:func:`leave`). A manager killed with ``kill -9`` cannot leave: its row
stops being seen, and any manager's beat deletes the rows not seen for the
stale timeout. Readers (:func:`live`) skip stale rows
themselves, so the answer is right even before a prune.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update

from ..clock import utcnow
from ..models import managers_table

if TYPE_CHECKING:
    from .base import Store

M = managers_table.c


@dataclass(frozen=True)
class ManagerInfo:
    """What a manager says of itself when it joins."""

    hostname: str
    pid: int
    version: str
    queues: Sequence[str]
    max_running: int
    executor: str


def join(store: Store, info: ManagerInfo) -> int:
    """Register a starting manager; the id of its row."""
    now = utcnow()
    with store.write() as conn:
        result = conn.execute(
            insert(managers_table).values(
                hostname=info.hostname,
                pid=info.pid,
                version=info.version,
                queues=list(info.queues),
                max_running=info.max_running,
                executor=info.executor,
                running=0,
                started_at=now,
                seen_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def beat(store: Store, manager_id: int, running: int, stale_after: float) -> bool:
    """Say the manager is alive with ``running`` tasks, and prune the stale rows of others.

    Two transactions: in one, MariaDB's DELETE (locking every row it scans)
    and another manager's beat at the same moment (its own row locked, then
    its DELETE) deadlocked. False when this manager's own row was pruned (it
    stalled longer than ``stale_after``).
    """
    with store.write() as conn:
        changed = conn.execute(
            update(managers_table)
            .where(M.id == manager_id)
            .values(seen_at=utcnow(), running=running)
        ).rowcount
    with store.write() as conn:
        conn.execute(delete(managers_table).where(M.seen_at < _stale_before(stale_after)))
    return bool(changed)


def leave(store: Store, manager_id: int) -> None:
    """Remove a manager's row on its clean exit."""
    with store.write() as conn:
        conn.execute(delete(managers_table).where(M.id == manager_id))


def live(store: Store, timeout: float) -> list[dict[str, Any]]:
    """The managers seen within ``timeout`` seconds, oldest first."""
    with store.read() as conn:
        rows = conn.execute(
            select(managers_table)
            .where(M.seen_at >= _stale_before(timeout))
            .order_by(M.started_at, M.id)
        ).mappings()
        return [dict(row) for row in rows]


def live_count(store: Store, timeout: float) -> tuple[int, int]:
    """How many managers are live, and the tasks they said they run."""
    with store.read() as conn:
        count, running = conn.execute(
            select(func.count(), func.coalesce(func.sum(M.running), 0)).where(
                M.seen_at >= _stale_before(timeout)
            )
        ).one()
    return int(count), int(running)


def _stale_before(timeout: float) -> datetime:
    return utcnow() - timedelta(seconds=timeout)
