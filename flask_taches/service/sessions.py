"""The caller's ``db.session``: has it written in its transaction, may it be ended?

``cancel()``, ``restart()``, ``delete()`` and ``purge()`` write through the
store's own connections, and ``get()`` must read fresh rows: both want the
request's session to end an idle read transaction first (a MySQL snapshot, a
SQLite reader). Rolling back is only safe when the session has nothing to
lose. Pending objects show in ``session.new/dirty/deleted``; what was already
*written* (a flush, ``add(commit=False)``'s Core INSERT on the session's
connection, an ``UPDATE`` through ``session.execute``) does not, so it is
tracked here: a cursor listener on the app's engines flags the session whose
transaction the connection belongs to, and the flag is cleared when that
transaction ends.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from ..exceptions import UncommittedSession

#: ``session.info`` key: True once the current transaction has written.
WROTE = "taches.wrote"
#: Statement openings that do not write (a locking SELECT is looked at apart).
_READS = ("SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "SAVEPOINT", "RELEASE", "ROLLBACK", "SET ")
_LOCKING = (" FOR UPDATE", " FOR SHARE", " FOR NO KEY UPDATE", " LOCK IN SHARE MODE")

#: The ``session.info`` of the session transaction each connection serves.
_owners: WeakKeyDictionary[Connection, dict[Any, Any]] = WeakKeyDictionary()
_engines: WeakSet[Engine] = WeakSet()


def watch(app: Flask, db: SQLAlchemy) -> None:
    """Track the writes of ``db``'s sessions (idempotent)."""
    session_class = db.session.session_factory.class_
    if not event.contains(session_class, "after_begin", _on_begin):
        event.listen(session_class, "after_begin", _on_begin)
        event.listen(session_class, "after_flush", _on_flush)
        event.listen(session_class, "after_transaction_create", _on_transaction_edge)
        event.listen(session_class, "after_transaction_end", _on_transaction_edge)
    if app in getattr(db, "_app_engines", {}):
        # Listen before the app's first connection exists (db.init_app came first).
        with app.app_context():
            for engine in db.engines.values():
                _watch_engine(engine)


def has_written(session: Session | scoped_session[Any]) -> bool:
    """True when the session's current transaction has written to the database."""
    real = session() if isinstance(session, scoped_session) else session
    return bool(real.info.get(WROTE)) and real.in_transaction()


def has_changes(session: Session | scoped_session[Any]) -> bool:
    """Written in its transaction, or objects waiting to be flushed."""
    return has_written(session) or bool(session.new or session.dirty or session.deleted)


def end_idle_read(session: scoped_session[Any]) -> None:
    """End an idle read transaction, whose snapshot may be old, before reading.

    MySQL/MariaDB's REPEATABLE READ (and any snapshot isolation) keeps
    showing the rows as of the transaction's first read, so a caller
    polling ``get()`` would never see its task end. A session holding the
    caller's work is left as it is: it reads its own writes.
    """
    if session.registry.has() and not has_changes(session):
        session.rollback()


def release_for_store(session: scoped_session[Any], action: str) -> None:
    """End the request's read transaction before the store writes on its own.

    A session holding the caller's work (written or pending) is never
    rolled back: :class:`UncommittedSession` says to commit it first. On
    SQLite the store would otherwise wait for the caller's own write lock.
    """
    if has_changes(session):
        raise UncommittedSession(
            f"commit db.session before {action}(): it holds uncommitted changes"
        )
    session.rollback()


def _watch_engine(engine: Engine) -> bool:
    """Listen to ``engine``'s statements; False when it already was."""
    if engine in _engines:
        return False
    event.listen(engine, "before_cursor_execute", _note_write)
    _engines.add(engine)
    return True


def _on_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if _watch_engine(connection.engine):
        # This connection was made before its engine had a listener: tell it too.
        event.listen(connection, "before_cursor_execute", _note_write)
    _owners[connection] = session.info


def _on_flush(session: Session, flush_context: Any) -> None:
    session.info[WROTE] = True


def _on_transaction_edge(session: Session, transaction: SessionTransaction) -> None:
    # A new or ended outermost transaction has written nothing (yet); a
    # savepoint's end keeps the flag: the outer transaction still holds its work.
    if transaction.parent is None:
        session.info.pop(WROTE, None)


def _note_write(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    info = _owners.get(conn)
    if info is None or info.get(WROTE):
        return
    if _writes(statement):
        info[WROTE] = True


def _writes(statement: str) -> bool:
    head = statement.lstrip()[:12].upper()
    if not head.startswith(_READS):
        return True
    # A locking read holds row locks a rollback would give up.
    return head.startswith("SELECT") and any(
        lock in statement or lock.lower() in statement for lock in _LOCKING
    )
