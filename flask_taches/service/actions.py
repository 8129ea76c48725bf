"""Acting on tasks for a caller: cancel, restart, delete, purge.

The store applies each action in its own transaction, under the row lock;
the caller's ``db.session`` is first released (it must hold no uncommitted
work: :class:`UncommittedSession` says so), and a :class:`Tache` object the
caller holds is refreshed afterwards, or forgotten once its row is gone.

``check=True`` acts as the current request's user: a task they may not see is
:class:`TacheNotFound` (as a missing one), one they may see but not act on is
:class:`~flask_taches.auth.NotAllowed`; without it the action is the trusted
server code's (the CLI, a script, a task).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import scoped_session

from .. import auth
from ..clock import utcnow
from ..exceptions import InvalidTache, TacheNotFound, no_such_task
from ..models import Tache
from ..state import app_state
from ..status import FINISHED, Status
from ..store.unique import refused_when_held
from .files import remove_folder
from .reading import get_visible
from .sessions import release_for_store

PURGE_BATCH = 500  # tasks deleted per transaction by purge()
#: Who cancelled, when no request's user is there to say (the CLI, a script).
DEFAULT_CANCELLER = "cli"


def cancel(tache: Tache | int, *, who: str | None = None, check: bool = False) -> Status | None:
    """Cancel a task; the status now stored (RUNNING while its stop is under way) or None."""
    tache_id = task_id(tache)
    state = app_state()
    _release(state.db.session, tache_id, "cancel", check)
    status = state.store.request_cancel(tache_id, who or auth.current_owner() or DEFAULT_CANCELLER)
    _refresh(tache)
    return status


def restart(tache: Tache | int, *, check: bool = False) -> None:
    """Put a finished task back to TO_RUN (refused while another holds its unique signature)."""
    tache_id = task_id(tache)
    state = app_state()
    _release(state.db.session, tache_id, "restart", check)
    with refused_when_held(tache_id):
        state.store.restart(tache_id)
    _refresh(tache)


def delete(tache: Tache | int, *, check: bool = False) -> None:
    """Delete a task that is not RUNNING, with its attached file."""
    tache_id = task_id(tache)
    state = app_state()
    _release(state.db.session, tache_id, "delete", check)
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


def _release(session: scoped_session[Any], tache_id: int, action: str, check: bool) -> None:
    """Free the caller's session for the store, after checking the right when asked."""
    release_for_store(session, action)
    if check:
        allowed_or_raise(tache_id, action)
        session.rollback()  # the check's read must not hold SQLite's lock


def allowed_or_raise(tache_id: int, action: str) -> None:
    """Refuse, in one line, an action the current user may not do on this task.

    Decided on the row as it is now, not on an object the caller may have changed.
    """
    row = get_visible(tache_id)
    if row is None:
        raise no_such_task(tache_id)
    auth.check(row, action)


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
