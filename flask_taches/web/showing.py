"""What a fragment or a dashboard row says about a task beyond its status.

The reason a task failed (its last error), how long it ran, when it may run
("in 3 h"), and the confirm text of each of its buttons. Jinja globals
(``taches_reason``, ``taches_ran_for``, ``taches_when``, ``taches_confirm``),
registered by :func:`flask_taches.web.templating.init_app`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect

from ..clock import as_utc, utcnow
from ..models import Tache
from ..service import figures
from ..status import Status
from . import i18n

#: The statuses whose fragment says why: the task ended badly on its own.
WITH_REASON = frozenset({Status.FAILED.value, Status.INTERRUPTED.value})
#: Log levels that may explain a failure, the most telling first.
REASON_LEVELS = (("error", "critical"), ("warning",))


def logs_loaded(tache: Tache) -> bool:
    """Whether ``tache.logs`` is in memory (a listing defers it: reading it would query)."""
    return "logs" not in inspect(tache).unloaded


def reason(tache: Tache) -> str | None:
    """Why a FAILED or INTERRUPTED task ended: its last error (else warning) message.

    None for any other status, and when the logs were not read with the row
    (a listing loads them only for the rows that need a reason).
    """
    if tache.status not in WITH_REASON or not logs_loaded(tache):
        return None
    entries = [e for e in (tache.logs or []) if isinstance(e, dict) and e.get("message")]
    for levels in REASON_LEVELS:
        for entry in reversed(entries):
            if entry.get("level") in levels:
                return str(entry["message"])
    return None


def ran_for(tache: Tache, now: datetime | None = None) -> str | None:
    """How long the task ran ("40 s"), or runs so far; None before it started."""
    if tache.started_at is None:
        return None
    end = as_utc(tache.ended_at) if tache.ended_at is not None else (now or utcnow())
    if tache.ended_at is None and tache.status != Status.RUNNING.value:
        return None  # queued again for a retry: its last run's length is not known
    return i18n.duration((end - as_utc(tache.started_at)).total_seconds())


def when(value: datetime | None, now: datetime | None = None) -> str | None:
    """``"in 3 h 00"`` for a future time, ``"5 min ago"`` for a past one."""
    if value is None:
        return None
    seconds = (as_utc(value) - (now or utcnow())).total_seconds()
    if seconds > 0:
        return i18n.text("in", duration=i18n.duration(seconds))
    return i18n.text("ago", duration=i18n.duration(-seconds))


def count_text(count: int | None) -> str:
    """``"12"``, ``"10,000+"`` past the cap of the counts, ``"?"`` when none could be read."""
    if count is None:
        return "?"
    if count > figures.COUNT_CAP:
        return f"{figures.COUNT_CAP:,}+"
    return str(count)


def confirm(tache: Tache, action: str) -> str:
    """The question a button asks first; a delete names the attached file only if there is one."""
    if action == "delete" and tache.fichier:
        return i18n.text("confirm.delete_with_file", id=tache.id)
    return i18n.text(f"confirm.{action}", id=tache.id)


def globals_() -> dict[str, Any]:
    """The Jinja globals of this module."""
    return {
        "taches_reason": reason,
        "taches_ran_for": ran_for,
        "taches_when": when,
        "taches_confirm": confirm,
        "taches_count": count_text,
    }
