"""Adding tasks: one, many in one transaction, or a chain that runs one after the other.

Each task becomes a checked :class:`~.new_rows.NewRow`; the rows are inserted
by the store on the session's own connection (so ``commit=False`` joins the
caller's transaction), files are copied once the ids are known, and the
caller's :class:`Tache` objects are adopted. Files are checked before the
insert (what can be refused ahead changes nothing, not even a caller's
``commit=False`` work); any later failure undoes all of it: the transaction,
the adoption and the copied files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from ..exceptions import FichierRefused, InvalidTache
from ..models import Tache
from ..signals import send, tache_added
from ..state import AppState, app_state
from ..status import Status
from .adopting import adopt, disown
from .files import check_fichier, remove_folder, store_fichier
from .new_rows import OWNER_UNSET, NewRow, NewRowRules, prepare
from .unique import hold_signature, insert_rows


def add_one(
    tache: Tache | str, *, owner: Any, fichier: Any, commit: bool, options: dict[str, Any]
) -> int:
    """Insert one task (with its file, if any); its id (the live one's, for a unique task)."""
    state = app_state()
    unique = options.pop("unique", False)
    row = prepare(tache, NewRowRules.of(state), owner=owner, options=options)
    if unique:
        hold_signature(row)
    if fichier is not None:
        if row.fichier is not None:
            raise FichierRefused(
                "give the file as Tache(fichier=...) or add(fichier=...), not both"
            )
        row.fichier = fichier
    return save(state, [row], commit=commit)[0]


def add_all(taches: Iterable[Tache | str], *, commit: bool) -> list[int]:
    """Insert many tasks in one transaction; their ids in the order given."""
    state = app_state()
    rows = prepare_all(state, taches)
    if not rows:
        return []
    return save(state, rows, commit=commit)


def add_chain(taches: Sequence[Tache | str], *, commit: bool) -> list[int]:
    """Insert a chain: the first TO_RUN, each next one WAITING on the one before."""
    if len(taches) < 2:
        raise InvalidTache("a chain needs at least two tasks")
    state = app_state()
    rows = prepare_all(state, taches, previous_from=1)
    for waiting in rows[1:]:
        waiting.values["status"] = Status.WAITING.value
    return save(state, rows, commit=commit, chained=True)


def prepare_all(
    state: AppState, taches: Iterable[Tache | str], *, previous_from: int | None = None
) -> list[NewRow]:
    """The rows of ``taches``; those from index ``previous_from`` on follow others."""
    rules = NewRowRules.of(state)
    return [
        prepare(
            tache,
            rules,
            owner=OWNER_UNSET,
            previous=previous_from is not None and index >= previous_from,
        )
        for index, tache in enumerate(taches)
    ]


def save(
    state: AppState,
    rows: Sequence[NewRow],
    *,
    commit: bool,
    chained: bool = False,
    link: Callable[[Connection, list[int]], None] | None = None,
) -> list[int]:
    """Insert ``rows`` (linked as a chain when ``chained``), copy their files, adopt them.

    ``link(conn, ids)`` links the new rows otherwise (a group), in the same transaction.
    """
    for row in rows:
        if row.fichier is not None:
            check_fichier(row.fichier)  # refused before the insert: nothing to undo
    session = state.db.session()
    if commit and not chained and link is None and _alone(rows, session):
        row = rows[0]
        wake = row.values["status"] == Status.TO_RUN.value
        bind = session.get_bind(Tache)
        if isinstance(bind, Engine):  # (a session bound to a connection: the plain path)
            tache_id = state.store.fast_add.insert(bind, row.values, wake=wake)
            if tache_id is not None:
                return _added(state, rows, [tache_id], commit=True)
    for row in rows:
        if row.tache is not None and row.tache in session:
            session.expunge(row.tache)  # added by the caller: we insert it, not the flush
    # The session's own connection: commit=False joins the caller's transaction.
    conn = session.connection(bind_arguments={"mapper": Tache})
    copied: list[Path] = []
    adopted: list[Tache] = []
    store = state.store
    try:
        ids, inserted = insert_rows(store, conn, rows)
        if not inserted:  # a live task holds the unique signature: it is the answer
            if commit:
                session.commit()
            return ids
        if chained:
            store.link_chain(conn, ids)
            for row, next_id in zip(rows, ids[1:], strict=False):
                row.values["next_id"] = next_id
        if link is not None:
            link(conn, ids)
        for row, tache_id in zip(rows, ids, strict=True):
            if row.fichier is not None:
                folder = state.fichier_folder(tache_id)
                copied.append(folder)
                row.values["fichier"] = store_fichier(folder, row.fichier)
                store.set_fichier(conn, tache_id, row.values["fichier"])
        adopted = adopt(session, rows, ids)
        if commit:
            session.commit()
    except BaseException:
        session.rollback()
        disown(session, adopted)
        for folder in copied:
            remove_folder(folder)
        raise
    return _added(state, rows, ids, commit=commit)


def _added(state: AppState, rows: Sequence[NewRow], ids: list[int], *, commit: bool) -> list[int]:
    """New rows are in: ``tache_added`` for each, then (once committed) the after-add hook."""
    _announce(state, rows, ids)  # before an eager run starts them
    if commit and state.hooks.after_add is not None:
        state.hooks.after_add(ids)  # committed: eager mode may run them now
    return ids


def _announce(state: AppState, rows: Sequence[NewRow], ids: Sequence[int]) -> None:
    """``tache_added`` for each new row, in this process (no receiver: no loop)."""
    if not tache_added.receivers:
        return
    for row, tache_id in zip(rows, ids, strict=True):
        values = row.values
        send(
            tache_added,
            state.app,
            tache_id=tache_id,
            method=values["method"],
            queue=values["queue"],
        )


def _alone(rows: Sequence[NewRow], session: Any) -> bool:
    """Whether committing the session would commit these rows and nothing else.

    One row from a method string (no caller's object to adopt), no file, a
    session with no transaction open and nothing waiting for its next flush:
    then the store's fast path (:mod:`~flask_taches.store.fast_add`) cannot
    differ from the plain one.
    """
    if len(rows) != 1 or rows[0].tache is not None or rows[0].fichier is not None:
        return False
    return not (session.in_transaction() or session.new or session.deleted or session.dirty)
