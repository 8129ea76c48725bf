"""The next forked child's database connection, opened by the manager while the last one runs.

Opening it waits on the server (a backend started, the table loaded:
:mod:`flask_taches.store.handover`), so a thread does it, right after a
fork. That thread is always joined before the manager forks again: a fork
copies only the thread that calls it, and one caught holding a lock would
leave that lock held for ever in the child.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from ...store import Store
from ...store.handover import Handover
from ..stops import HANDLED

#: Seconds a connection may wait for its child: an older one may have been
#: dropped by the server meanwhile (a restart, an idle timeout), so it is closed.
MAX_WAIT = 60.0


class NextConnection:
    """At most one connection, opened ahead for the next child (none for SQLite)."""

    def __init__(self, store: Store) -> None:
        self.handover = Handover(store) if store.has_sockets else None
        self._opener: threading.Thread | None = None
        self._connection: Any = None
        self._opened_at = 0.0

    def join(self) -> None:
        """Wait for the connection being opened, if any: then no thread of ours runs."""
        if self._opener is not None:
            self._opener.join()
            self._opener = None

    def take(self) -> Any:
        """Before a fork: the connection opened for this child; None, it connects itself."""
        self.join()
        connection, self._connection = self._connection, None
        if connection is not None and time.monotonic() - self._opened_at > MAX_WAIT:
            self.close_unused(connection)
            return None
        return connection

    def open_ahead(self) -> None:
        """After a fork, in the manager: open the next child's connection in a thread."""
        if self.handover is None:
            return
        self._opener = threading.Thread(target=self._open, name="taches-next-connection")
        self._opener.start()

    def given(self, connection: Any) -> None:
        """After a fork, in the manager: the child has ``connection``; drop this copy."""
        if connection is not None and self.handover is not None:
            self.handover.let_go(connection)

    def close_unused(self, connection: Any) -> None:
        """A connection no child will have (its fork failed, or it waited too long)."""
        if connection is not None and self.handover is not None:
            self.handover.close(connection)

    def close(self) -> None:
        """After the manager's run: close the connection no child took."""
        self.close_unused(self.take())

    def _open(self) -> None:
        assert self.handover is not None
        # The manager's signals are its main thread's: none interrupts the connect here.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        self._connection = self.handover.open()
        self._opened_at = time.monotonic()
