"""Reading tasks for a caller: one by id, the newest of a signature, a file's path, figures.

Rows are read through the app's ``db.session`` (the caller gets ORM objects
it can keep using), always fresh: an idle read transaction is ended first
and the objects are refreshed from the row (``populate_existing``).

Two kinds of calls: the plain ones (``get``, ``latest``, ``latest_ids``) are for
trusted server code and see every task; the ``visible_*`` ones (and
``get_or_404``) see as the current request's user (:func:`auth.can`), never
load ``parametres_caches`` (touching it raises), and answer "nothing" alike
for a task that does not exist and one the user may not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import defer
from werkzeug.exceptions import abort

from .. import auth
from ..exceptions import no_such_task
from ..models import MAX_ID, Tache
from ..state import app_state
from .files import contained_fichier
from .sessions import end_idle_read

#: Rows of one signature read per query while looking for the newest visible one
#: under an ``authorize`` hook, and at most this many such reads per signature.
LATEST_CHUNK = 50
LATEST_READS = 20


def no_secrets() -> Any:
    """Never even load ``parametres_caches`` for a viewer; touching it raises."""
    return defer(Tache.parametres_caches, raiseload=True)


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


def get_visible(tache_id: int) -> Tache | None:
    """The task if the current user may see it (its secrets not loaded), else None."""
    try:
        tache_id = int(tache_id)
    except (TypeError, ValueError):
        return None
    if not 0 < tache_id <= MAX_ID:
        return None
    session = app_state().db.session
    end_idle_read(session)
    tache = session.get(Tache, tache_id, populate_existing=True, options=[no_secrets()])
    return tache if tache is not None and auth.can(tache, "view") else None


def get_or_404(tache_id: int) -> Tache:
    """:func:`get_visible`, or a 404: the same answer for "no such task" and "not yours"."""
    tache = get_visible(tache_id)
    if tache is None:
        abort(404, description=f"no task {tache_id} here")
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


def visible_latest(signature: str) -> Tache | None:
    """The newest task of this signature the current user may see, or None."""
    end_idle_read(app_state().db.session)
    return visible_batch([], [signature])[1].get(signature)


def visible_batch(
    ids: Sequence[int], signatures: Sequence[str]
) -> tuple[dict[int, Tache], dict[str, Tache]]:
    """The tasks of ``ids`` and the newest of each signature, that the user may see.

    Two queries whatever the count: the newest id of each signature, then
    every row asked. Only for a signature whose newest the user may not see,
    the newest among the rows the user may see: another user's newer task
    neither hides the user's own nor shows that it exists.
    """
    wanted = [i for i in dict.fromkeys(ids) if 0 < i <= MAX_ID]
    newest = latest_ids(list(dict.fromkeys(signatures)))
    rows = _visible_rows({*wanted, *newest.values()})
    by_signature = {s: rows[i] for s, i in newest.items() if i in rows}
    hidden = [s for s in newest if s not in by_signature]
    if hidden:
        by_signature.update(_newest_visible(hidden))
    return {i: rows[i] for i in wanted if i in rows}, by_signature


def _newest_visible(signatures: Sequence[str]) -> dict[str, Tache]:
    """The newest task of each signature among those the user may see."""
    condition = auth.visible_condition()
    if condition is None:  # an ``authorize`` hook decides row by row
        walked = {s: _walk_newest(s) for s in signatures}
        return {s: t for s, t in walked.items() if t is not None}
    query = (
        select(Tache.signature, func.max(Tache.id))
        .where(Tache.signature.in_(list(signatures)), condition)
        .group_by(Tache.signature)
    )
    newest = {str(s): int(i) for s, i in app_state().db.session.execute(query).all()}
    rows = _visible_rows(set(newest.values()))
    return {s: rows[i] for s, i in newest.items() if i in rows}


def _visible_rows(ids: set[int]) -> dict[int, Tache]:
    """The rows of these ids (secrets not loaded) that the user may see."""
    if not ids:
        return {}
    query = _rows().where(Tache.id.in_(sorted(ids)))
    return {t.id: t for t in app_state().db.session.scalars(query) if auth.can(t, "view")}


def _walk_newest(signature: str) -> Tache | None:
    """Under an ``authorize`` hook: walk the signature newest first until one is visible."""
    session = app_state().db.session
    before: int | None = None
    for _ in range(LATEST_READS):
        query = _rows().where(Tache.signature == signature)
        if before is not None:
            query = query.where(Tache.id < before)
        chunk = list(session.scalars(query.order_by(Tache.id.desc()).limit(LATEST_CHUNK)))
        for tache in chunk:
            if auth.can(tache, "view"):
                return tache
        if len(chunk) < LATEST_CHUNK:
            break
        before = chunk[-1].id
    return None


def _rows() -> Select[Tache]:
    return select(Tache).options(no_secrets()).execution_options(populate_existing=True)


def fichier_path(tache: Tache) -> Path | None:
    """Absolute path of a task's attached file, or None.

    Only a file inside the task's own folder: a name edited behind ``add()``'s
    back (``"../../etc/hostname"``) gives None, as on the download route.
    """
    return contained_fichier(app_state().fichier_folder(tache.id), tache.fichier)


def stats(windows: Sequence[int] = (1, 5, 15)) -> dict[str, Any]:
    """The store's figures: counts by status and queue, oldest ready age, throughput."""
    return app_state().store.stats(windows)
