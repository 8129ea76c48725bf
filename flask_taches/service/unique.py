"""``add(..., signature=S, unique=True)``: the id of the live task holding S, or a new one.

The new row holds its signature as ``unique_key``; the store inserts it only if
no live task holds that key (the database's unique index deciding, see
:mod:`flask_taches.store.unique`), and otherwise answers with the live task's id.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from ..exceptions import InvalidTache
from ..store import Store
from .new_rows import NewRow


def hold_signature(row: NewRow) -> None:
    """Mark ``row`` as holding its signature while it is live."""
    signature = row.values.get("signature")
    if not signature:
        raise InvalidTache("unique=True needs a signature: the live task is found by it")
    row.values["unique_key"] = signature


def insert_rows(store: Store, conn: Connection, rows: Sequence[NewRow]) -> tuple[list[int], bool]:
    """Insert the rows; their ids, and False when a unique row's live holder answered."""
    if len(rows) == 1 and rows[0].values.get("unique_key"):
        tache_id, inserted = store.insert_unique(conn, rows[0].values)
        return [tache_id], inserted
    return store.insert(conn, [row.values for row in rows]), True
