"""The caller's :class:`Tache` objects, adopted by the session once their rows are inserted.

``add()`` does not go through the ORM's unit of work (one ``Tache`` object, a
flush, an identity map entry per row cost more than the INSERT itself): a new
task is a plain dict of column values (:class:`~.new_rows.NewRow`), inserted
by the store on the session's connection. A :class:`Tache` the caller handed
in then gets its values and id back and joins the session as a persistent
object, as after a flush; if the insert is rolled back it is new again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value

from ..models import Tache, taches_table
from .new_rows import NewRow

_NULL_ROW: dict[str, Any] = dict.fromkeys(taches_table.c.keys())


def adopt(session: Session, rows: Sequence[NewRow], ids: Sequence[int]) -> list[Tache]:
    """Give each caller's :class:`Tache` its stored values and id, persistent in ``session``.

    As after an ORM flush: the object is in the identity map (``taches.get(id)``
    is that object) and, once committed, expired like any other.
    """
    adopted = []
    for row, tache_id in zip(rows, ids, strict=True):
        tache = row.tache
        if tache is None:
            continue
        # The whole row, as a load would give it (NULL where nothing was set);
        # make_transient_to_detached() then takes it as the committed state,
        # with no history and nothing left expired to load again.
        loaded = instance_dict(tache)
        loaded.update(_NULL_ROW)
        loaded.update(row.values)
        loaded["id"] = tache_id
        make_transient_to_detached(tache)
        session.add(tache)
        adopted.append(tache)
    return adopted


def disown(session: Session, taches: Sequence[Tache]) -> None:
    """Undo :func:`adopt` when the insert is rolled back: the objects are new again."""
    for tache in taches:
        if tache in session:
            session.expunge(tache)
        make_transient(tache)
        set_committed_value(tache, "id", None)
