"""Acting on every task a filter selects: cancel, restart the failed, delete the finished.

The dashboard's bulk buttons post the filter's own fields; the web layer
turns them into SQL conditions and asks here. Each task is then acted on in
its own transaction through the one-task actions (:mod:`.actions`), so a bulk
obeys the same rules, row lock and log entries as a single click, and a task
that moved meanwhile (finished, restarted, deleted) is counted, not an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import false, or_, select
from sqlalchemy.orm import load_only

from .. import auth
from ..exceptions import InvalidTransition, TacheNotFound
from ..models import Tache
from ..state import app_state
from ..status import FINISHED, UNFINISHED, Status
from . import actions
from .figures import capped_count
from .sessions import end_idle_read

#: The bulk actions, and the statuses each may touch.
BULK_STATUSES: dict[str, tuple[str, ...]] = {
    "cancel": tuple(s.value for s in UNFINISHED),
    "restart": (Status.FAILED.value,),
    "delete": tuple(s.value for s in FINISHED),
}
#: Ids read per query while walking a selection.
CHUNK = 500


@dataclass
class BulkReport:
    """What a bulk action did, by outcome, with the ids of each."""

    action: str
    #: Cancelled, restarted or deleted at once.
    done: list[int] = field(default_factory=list)
    #: RUNNING tasks whose stop was asked (their own process stops them).
    stopping: list[int] = field(default_factory=list)
    #: Selected but finished (or gone) before the action reached them.
    too_late: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": self.action,
            "done": self.done,
            "stopping": self.stopping,
            "too_late": self.too_late,
        }
        if self.action == "cancel":
            data["cancelled"] = sorted(self.done + self.stopping)  # as before the report
        return data


def selection(action: str, conditions: Sequence[Any], statuses: Sequence[str]) -> list[Any]:
    """The conditions of a bulk ``action`` under a filter (``statuses``: the filter's own)."""
    allowed = BULK_STATUSES[action]
    wanted = [s for s in statuses if s in allowed] if statuses else list(allowed)
    if not wanted:
        return [false()]
    return [*conditions, Tache.status.in_(wanted)]


def count(conditions: Sequence[Any]) -> int | None:
    """How many tasks of a selection the user may act on (up to ``COUNT_CAP + 1``).

    None when SQL cannot tell (an ``authorize`` hook decides row by row).
    """
    acting = _acting_condition()
    if acting is NotImplemented:
        return None
    session = app_state().db.session
    end_idle_read(session)
    wanted = [*conditions] if acting is None else [*conditions, acting]
    return int(session.scalar(select(capped_count(wanted))) or 0)


def run(action: str, conditions: Sequence[Any], who: str) -> BulkReport:
    """Apply ``action`` to each task of the selection the user may act on."""
    report = BulkReport(action)
    for tache_id in _ids(action, conditions):
        try:
            outcome = _apply(action, tache_id, who)
        except (TacheNotFound, InvalidTransition):
            outcome = "too_late"
        getattr(report, outcome).append(tache_id)
    return report


def _apply(action: str, tache_id: int, who: str) -> str:
    if action == "cancel":
        status = actions.cancel(tache_id, who=who)
        if status is None:
            return "too_late"
        return "stopping" if status is Status.RUNNING else "done"
    if action == "restart":
        actions.restart(tache_id)
    else:
        actions.delete(tache_id)
    return "done"


def _ids(action: str, conditions: Sequence[Any]) -> Iterator[int]:
    """The ids of the selection the user may act on, read by chunks before acting."""
    session = app_state().db.session
    selected: list[int] = []
    after = 0
    while True:
        end_idle_read(session)
        query = (
            select(Tache)
            .where(*conditions, Tache.id > after)
            .order_by(Tache.id)
            .limit(CHUNK)
            .options(*_ids_only())
        )
        visible = auth.visible_condition()
        if visible is not None:
            query = query.where(visible)
        rows = list(session.scalars(query))
        selected += [t.id for t in rows if _may(t, action)]
        if len(rows) < CHUNK:
            break
        after = rows[-1].id
    session.rollback()  # the store writes on its own connections next
    yield from selected


def _may(tache: Tache, action: str) -> bool:
    running = tache.status == Status.RUNNING.value
    if action == "cancel" and running and tache.cancel_requested_at is not None:
        return False  # asked already: not counted twice
    return auth.can(tache, "view") and auth.can(tache, action)


def _ids_only() -> tuple[Any, ...]:
    return (load_only(Tache.id, Tache.status, Tache.owner, Tache.cancel_requested_at),)


def _acting_condition() -> Any:
    """SQL: the tasks the default rule lets the user act on (None: all of them).

    ``NotImplemented`` under an ``authorize`` hook, which decides row by row.
    """
    if auth.visible_owners() is None:  # an admin, or a hook
        return None if auth.is_admin() else NotImplemented
    owner = auth.current_owner()
    parts = [] if owner is None else [auth.owner_is(owner)]
    if current_app.config["TACHES_SHARED_ACTIONS"]:
        parts.append(auth.owner_is(None))
    return or_(*parts) if parts else false()
