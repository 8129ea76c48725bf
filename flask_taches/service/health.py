"""Is the queue healthy: the live managers, ``flask taches check``, ``/health``, ``/metrics``.

Everything is read from the database (the managers registry and the
``taches`` table), never from one process's memory, so every web process and
every command gives the same answer. A manager is live when it beat within
``TACHES_HEARTBEAT_TIMEOUT`` seconds, the same patience a RUNNING task gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import utcnow
from ..state import app_state
from ..store import managers, monitoring

#: Minutes of the recent windows ``/metrics`` counts ended tasks over.
WINDOWS = (1, 5, 15)
#: Minutes of ended tasks the duration histogram is made of.
DURATION_WINDOW = 15


@dataclass(frozen=True)
class Limits:
    """What ``check`` calls unhealthy, besides "no live manager"."""

    #: Seconds the oldest ready task may wait; None: any wait.
    max_ready_age: float | None = None
    #: Failures allowed within ``within_minutes``; None: any number.
    max_failed: int | None = None
    within_minutes: float = 60.0


def _stale_after() -> float:
    return float(app_state().config["TACHES_HEARTBEAT_TIMEOUT"])


def manager_rows() -> list[dict[str, Any]]:
    """The live managers' rows (aware datetimes), oldest first: the dashboard's panel."""
    return managers.live(app_state().store, _stale_after())


def live_managers() -> list[dict[str, Any]]:
    """The live managers as JSON-able objects, oldest first."""
    return [
        {
            "hostname": row["hostname"],
            "pid": row["pid"],
            "started_at": row["started_at"].isoformat(),
            "seen_at": row["seen_at"].isoformat(),
            "version": row["version"],
            "queues": list(row["queues"] or []),
            "max": row["max_running"],
            "executor": row["executor"],
            "running": row["running"],
        }
        for row in manager_rows()
    ]


def problems(limits: Limits) -> list[str]:
    """What is wrong now, one phrase each; empty when all is well."""
    store = app_state().store
    found = []
    count, _ = managers.live_count(store, _stale_after())
    if not count:
        found.append(f"no live manager (none seen in the last {_stale_after():g} s)")
    if limits.max_ready_age is not None:
        ages = monitoring.oldest_ready_by_queue(store)
        late = {q: age for q, age in ages.items() if age > limits.max_ready_age}
        if late:
            queue, age = max(late.items(), key=lambda item: item[1])
            found.append(
                f"the oldest ready task (queue {queue!r}) has waited {age:.0f} s"
                f" (more than {limits.max_ready_age:g} s)"
            )
    if limits.max_failed is not None:
        since = utcnow() - timedelta(minutes=limits.within_minutes)
        failed = monitoring.failed_since(store, since)
        if failed > limits.max_failed:
            found.append(
                f"{failed} task(s) FAILED in the last {limits.within_minutes:g} min"
                f" (more than {limits.max_failed})"
            )
    return found


def health() -> dict[str, Any]:
    """For load balancers: the database answers, and how many managers are live."""
    count, _ = managers.live_count(app_state().store, _stale_after())
    return {"status": "ok", "managers": count}


@dataclass(frozen=True)
class Figures:
    """What ``/metrics`` exposes, read at one moment."""

    at: datetime
    by_queue: dict[str, dict[str, int]]
    oldest_ready: dict[str, float]
    managers: int
    managers_running: int
    #: ``{minutes: {status: tasks ended in that window}}``.
    ended: dict[int, dict[str, int]]
    #: Seconds from start to end of the tasks ended in the last DURATION_WINDOW minutes.
    durations: list[float]


def figures() -> Figures:
    state = app_state()
    store = state.store
    stats = store.stats(WINDOWS)
    count, running = managers.live_count(store, _stale_after())
    since = utcnow() - timedelta(minutes=DURATION_WINDOW)
    return Figures(
        at=utcnow(),
        by_queue=stats["by_queue"],
        oldest_ready=monitoring.oldest_ready_by_queue(store),
        managers=count,
        managers_running=running,
        ended={window["minutes"]: window["by_status"] for window in stats["throughput"]},
        durations=monitoring.durations_since(store, since),
    )
