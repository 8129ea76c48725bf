"""The store: all SQL on the ``taches`` table that races with other processes.

:func:`for_engine` picks the store of the app's database. The base store
(:mod:`.base`, with the manager's verbs in :mod:`.claims`, inserts in
:mod:`.inserting` and figures in :mod:`.reports`) is portable SQL; each
database's own module holds its claim transaction, its wake-up source and its
insert strategy, and nothing database-specific lives anywhere else.
"""

from __future__ import annotations

from sqlalchemy import Engine

from .base import Store
from .records import AttemptState, Beat, Claimed, Overdue, Rescued
from .wakeups import WaitingFor, WakeSource

__all__ = [
    "AttemptState",
    "Beat",
    "Claimed",
    "Overdue",
    "Rescued",
    "Store",
    "WaitingFor",
    "WakeSource",
    "for_engine",
]


def for_engine(engine: Engine, retry_base: float = 10.0) -> Store:
    """The store for ``engine``'s database (its driver is imported only here, on use)."""
    name = engine.dialect.name
    if name == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(engine, retry_base)
    if name == "postgresql":
        from .postgresql import PostgresStore

        return PostgresStore(engine, retry_base)
    if name in ("mysql", "mariadb"):
        from .mysql import MySQLStore

        return MySQLStore(engine, retry_base)
    return Store(engine, retry_base)
