"""A forked child never shares a database socket with the manager that forked it.

A task's process starts with copies of every descriptor its manager holds,
the pooled database connections included. Were it to keep them, a ``kill -9``
of the manager in the middle of a transaction would not close the socket (the
child still holds it): the server would never see the manager go, and its
transaction would stay "idle in transaction", holding its row locks and the
claim lock, while the children wait on their own rows.

So the store notes every DBAPI connection its engine opens (an engine event),
and the first thing a forked child does is point each of those descriptors at
``/dev/null`` with ``dup2``. That is no close: nothing is said to the server
(the parent's session goes on), the descriptor number stays taken (so no later
file can be mistaken for the connection), and the last process holding the
socket is the manager alone. Each database's store says where its driver
keeps the socket (:meth:`ForkVerbs.socket_fd`).
"""

from __future__ import annotations

import os
import stat
import weakref
from contextlib import suppress
from typing import Any

from sqlalchemy import Engine, event

from .fast import forget_pool_after_fork


class OpenedConnections:
    """The DBAPI connections an engine opened, weakly held (a closed one just goes)."""

    def __init__(self, engine: Engine) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        event.listen(engine, "connect", self._note)
        event.listen(engine, "checkout", self._note_checkout)

    def _note(self, dbapi_connection: Any, record: Any) -> None:
        self._connections.add(dbapi_connection)

    def _note_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # Also the connections opened before the store existed, once they are used.
        self._connections.add(dbapi_connection)

    def forget(self, dbapi_connection: Any) -> None:
        self._connections.discard(dbapi_connection)

    def __iter__(self) -> Any:
        return iter(list(self._connections))


def point_at_devnull(fds: list[int]) -> None:
    """Replace each socket descriptor in ``fds`` by ``/dev/null`` (anything else is left)."""
    sockets = [fd for fd in fds if _is_socket(fd)]
    if not sockets:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in sockets:
            os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


class ForkVerbs:
    """The store's part in a fork: before it (in the manager) and after it (in the child)."""

    engine: Engine

    def _track_connections(self) -> None:
        # Only a database whose connections are sockets has any to keep from a child.
        if self.has_sockets:
            self._opened = OpenedConnections(self.engine)

    @property
    def has_sockets(self) -> bool:
        """Its connections are sockets (PostgreSQL, MariaDB), not files (SQLite)."""
        return type(self).socket_fd is not ForkVerbs.socket_fd

    def forget_opened(self, dbapi_connection: Any) -> None:
        """In the manager: a connection it gives a child, whose socket the child keeps."""
        opened = getattr(self, "_opened", None)
        if opened is not None:
            opened.forget(dbapi_connection)

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        """The descriptor of a DBAPI connection's socket; None: it has none (SQLite)."""
        return None

    def before_fork(self) -> None:
        """In a manager about to fork: hold nothing a child must not share.

        The connections pooled before the store tracked them are closed here,
        so that each one a child may inherit is known.
        """
        self.engine.dispose()

    def forget_connections_after_fork(self) -> None:
        """In a forked child: leave the parent's sockets to it, and forget its pool."""
        fds = []
        for connection in getattr(self, "_opened", ()):
            with suppress(Exception):  # a closed or broken connection has no socket left
                fd = self.socket_fd(connection)
                if fd is not None and fd >= 0:
                    fds.append(fd)
        point_at_devnull(fds)
        forget_pool_after_fork(self.engine)
