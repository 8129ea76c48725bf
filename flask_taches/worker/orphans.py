"""Tasks no live manager looks after: the rescue of dead ones, the kill of stuck ones here.

Every supervision pass a manager rescues the RUNNING tasks of *any* manager
whose heartbeat is too old, or whose process on this host is gone (the
verdict is the store's, :meth:`Store.rescue`). A silent task whose process
lives here is not rescued on its silence: its timeout is enforced by its own
watchdog, else by its manager, and, when that manager is gone, by
:func:`kill_overdue_orphans` in whichever manager runs on its host.
"""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy.exc import SQLAlchemyError

from ..processes import SIGKILL, pid_alive, signal_group, started_near
from ..signals import finished_elsewhere
from ..status import Status
from ..store import Store
from .log import logger

#: Seconds an orphan gets past its timeout and kill grace before it is killed.
ORPHAN_MARGIN = 1.0


def rescue_dead_tasks(
    store: Store, *, hostname: str, heartbeat_timeout: float, mine: Set[int]
) -> None:
    """End or retry the RUNNING tasks found dead; ``mine``: the pids of this manager's children."""
    try:
        rescued = store.rescue(
            heartbeat_timeout=heartbeat_timeout,
            hostname=hostname,
            is_alive=lambda pid: pid in mine or pid_alive(pid),
        )
    except SQLAlchemyError as exc:
        logger.error("rescue failed: %s", exc, extra={"action": "rescue_error", "tache_id": None})
        return
    for found in rescued:
        finished_elsewhere(found.id, found.attempt, found.status)
        logger.warning(
            "rescued task %s attempt %s: %s -> %s",
            found.id,
            found.attempt,
            found.reason,
            found.status.value,
            extra={"action": "rescue", "tache_id": found.id},
        )


def kill_overdue_orphans(store: Store, *, hostname: str, kill_grace: float, mine: Set[int]) -> None:
    """Kill this host's tasks left by a dead manager and stuck past their timeout.

    ``mine`` (this manager's own children) have their backstop already. A pid
    that started far from the claim is somebody else's now: it is left alone.
    """
    try:
        overdue = store.overdue_here(hostname, kill_grace + ORPHAN_MARGIN)
    except SQLAlchemyError as exc:
        logger.error("overdue check failed: %s", exc, extra={"action": "rescue_error"})
        return
    for task in overdue:
        if task.pid in mine or not pid_alive(task.pid):
            continue  # our own child has its backstop; a dead one is rescued
        if started_near(task.pid, task.started_at) is False:
            continue
        signal_group(task.pid, SIGKILL)
        message = (
            f"timeout after {task.timeout:g} s: process {task.pid} did not stop and "
            f"was killed by a manager on {hostname}"
        )
        try:
            final = store.end_on_behalf(task.id, task.attempt, Status.FAILED, message)
        except SQLAlchemyError as exc:
            # Killed but not recorded: its pid is gone now, so a later rescue ends it.
            logger.error(
                "task %s: killed, but its end cannot be recorded yet: %s",
                task.id,
                exc,
                extra={"action": "rescue_error", "tache_id": task.id},
            )
            continue
        logger.warning(
            "task %s attempt %s: %s -> %s",
            task.id,
            task.attempt,
            message,
            final.value if final else "already ended",
            extra={"action": "overdue_killed", "tache_id": task.id},
        )
