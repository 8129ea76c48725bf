"""Reading tasks for a caller: one by id, the newest of a signature, a file's path, figures.

Rows are read through the app's ``db.session`` (the caller gets ORM objects
it can keep using), always fresh: an idle read transaction is ended first
and the objects are refreshed from the row (``populate_existing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..exceptions import no_such_task
from ..models import MAX_ID, Tache
from ..state import app_state
from .sessions import end_idle_read


def get(tache_id: int) -> Tache | None:
    """The task with this id, fresh from the database, or None."""
    tache_id = int(tache_id)
    if not 0 < tache_id <= MAX_ID:
        return None  # the column cannot hold it (PostgreSQL would raise)
    session = app_state().db.session
    end_idle_read(session)
    return session.get(Tache, tache_id, populate_existing=True)


def get_or_raise(tache_id: int) -> Tache:
    """The task with this id; :class:`TacheNotFound` when there is none."""
    tache = get(tache_id)
    if tache is None:
        raise no_such_task(tache_id)
    return tache


def latest(signature: str) -> Tache | None:
    """The newest task with this signature, fresh from the database, or None."""
    session = app_state().db.session
    end_idle_read(session)
    query = select(Tache).where(Tache.signature == signature).order_by(Tache.id.desc())
    return session.scalars(query.limit(1).execution_options(populate_existing=True)).first()


def latest_ids(signatures: Sequence[str]) -> dict[str, int]:
    """The newest task id of each signature, read in the session's own transaction."""
    if not signatures:
        return {}
    session = app_state().db.session
    return app_state().store.latest_ids(session.connection(), signatures)


def fichier_path(tache: Tache) -> Path | None:
    """Absolute path of a task's attached file, or None."""
    if not tache.fichier:
        return None
    return app_state().fichier_folder(tache.id) / tache.fichier


def stats(windows: Sequence[int] = (1, 5, 15)) -> dict[str, Any]:
    """The store's figures: counts by status and queue, oldest ready age, throughput."""
    return app_state().store.stats(windows)
