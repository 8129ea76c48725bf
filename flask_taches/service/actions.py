"""Acting on tasks for a caller: cancel, restart, delete, purge.

The store applies each action in its own transaction, under the row lock;
the caller's ``db.session`` is first released (it must hold no uncommitted
work: :class:`UncommittedSession` says so), and a :class:`Tache` object the
caller holds is refreshed afterwards, or forgotten once its row is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from .. import auth
from ..clock import utcnow
from ..exceptions import InvalidTache, TacheNotFound
from ..models import Tache
from ..state import app_state
from ..status import FINISHED, Status
from .files import remove_folder
from .sessions import release_for_store

PURGE_BATCH = 500  # tasks deleted per transaction by purge()
#: Who cancelled, when no request's user is there to say (the CLI, a script).
DEFAULT_CANCELLER = "cli"


def cancel(tache: Tache | int, *, who: str | None = None) -> Status | None:
    """Cancel a task; the status now stored (RUNNING while its stop is under way) or None."""
    tache_id = task_id(tache)
    state = app_state()
    release_for_store(state.db.session, "cancel")
    status = state.store.request_cancel(tache_id, who or auth.current_owner() or DEFAULT_CANCELLER)
    _refresh(tache)
    return status


def restart(tache: Tache | int) -> None:
    """Put a finished task back to TO_RUN."""
    tache_id = task_id(tache)
    state = app_state()
    release_for_store(state.db.session, "restart")
    state.store.restart(tache_id)
    _refresh(tache)


def delete(tache: Tache | int) -> None:
    """Delete a task that is not RUNNING, with its attached file."""
    tache_id = task_id(tache)
    state = app_state()
    release_for_store(state.db.session, "delete")
    state.store.delete(tache_id)
    remove_folder(state.fichier_folder(tache_id))
    if isinstance(tache, Tache) and tache in state.db.session:
        state.db.session.expunge(tache)


def purge(older_than: timedelta, statuses: Iterable[str] | None = None) -> int:
    """Delete finished tasks that ended more than ``older_than`` ago, in batches; how many."""
    wanted = _finished_statuses(statuses)
    cutoff = utcnow() - older_than
    state = app_state()
    release_for_store(state.db.session, "purge")
    deleted = 0
    while ids := state.store.purge_batch(wanted, cutoff, PURGE_BATCH):
        for tache_id in ids:
            remove_folder(state.fichier_folder(tache_id))
        deleted += len(ids)
    return deleted


def _finished_statuses(statuses: Iterable[str] | None) -> list[str]:
    """The status values ``purge()`` may delete: every finished one, or those asked."""
    finished = sorted(s.value for s in FINISHED)
    requested = [str(s).upper() for s in statuses] if statuses else finished
    try:
        wanted = sorted({Status(s).value for s in requested})
    except ValueError as exc:
        raise InvalidTache(f"unknown status in {', '.join(requested)}") from exc
    if not set(wanted) <= set(finished):
        raise InvalidTache(f"purge only deletes finished tasks ({', '.join(finished)})")
    return wanted


def task_id(tache: Tache | int) -> int:
    """The id of a :class:`Tache` or of anything ``int()`` takes."""
    if isinstance(tache, Tache):
        return int(tache.id)
    try:
        return int(tache)
    except (TypeError, ValueError):
        raise TacheNotFound(f"{tache!r} is not a task id") from None


def _refresh(tache: Tache | int) -> None:
    """Reload a caller's object from its row (the action changed it behind the session)."""
    if isinstance(tache, Tache):
        session = app_state().db.session
        if tache in session:
            session.refresh(tache)
