"""What an idle manager sleeps on, so that new work, a child's exit or a stop wakes it.

Two sources: the store's :class:`WakeSource` (NOTIFY on PostgreSQL, a watch
on the files on SQLite, a cheap look every ``TACHES_POLL`` on MySQL/MariaDB) and a socket
the manager's signal handlers write to (``signal.set_wakeup_fd``), which
:meth:`Manager.request_stop` writes to as well.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Sequence

from ..store import Store, WaitingFor, WakeSource
from .log import logger

RELISTEN_DELAY = 10.0  # seconds before listening again after the listener broke


class Wakeups:
    """The store's listener, rebuilt when it breaks, and the wake-up socket."""

    def __init__(
        self, store: Store, *, queues: Sequence[str] | None, max_running: int, poll: float
    ) -> None:
        self.store = store
        self.queues = queues
        self.max_running = max_running
        self.poll = poll
        self._listener = WakeSource()
        self._listen_again: float | None = None
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    @property
    def signal_fd(self) -> int:
        """The descriptor for ``signal.set_wakeup_fd``."""
        return self._writer.fileno()

    def listen(self) -> None:
        """(Re)build the store's listener; without one, the poll timer still works."""
        self.stop_listening()
        try:
            wanted = WaitingFor(self.queues, self.max_running, self.poll)
            self._listener = self.store.wake_source(wanted)
        except Exception as exc:  # any driver error: polling still finds the work
            logger.error(
                "cannot listen for new tasks (polling every %g s): %s",
                self.poll,
                exc,
                extra={"action": "listen_error", "tache_id": None},
            )
            self._listen_again = time.monotonic() + RELISTEN_DELAY

    def stop_listening(self) -> None:
        self._listener.close()
        self._listener = WakeSource()

    @property
    def source(self) -> WakeSource:
        """The store's listener now (a plain poll timer while it is broken)."""
        return self._listener

    @property
    def trusted(self) -> bool:
        """Whether the store's listener announces every commit that makes work ready."""
        return self._listener.trusted

    def wait_for_work(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s; whether the store said new work may be waiting."""
        if self._listen_again is not None and time.monotonic() >= self._listen_again:
            self._listen_again = None
            self.listen()
        try:
            return self._listener.wait(timeout, self._reader.fileno())
        except Exception as exc:  # the listening connection broke: listen again later
            logger.error(
                "listening for new tasks failed: %s",
                exc,
                extra={"action": "listen_error", "tache_id": None},
            )
            self.stop_listening()
            self._listen_again = time.monotonic() + RELISTEN_DELAY
            return False

    def sleep(self, timeout: float) -> None:
        """Sleep up to ``timeout`` s, or until a signal or :meth:`poke`."""
        select.select([self._reader], [], [], timeout)

    def drain(self) -> None:
        """Empty the socket, so that the next sleep waits for something new."""
        with contextlib.suppress(BlockingIOError, OSError):
            while self._reader.recv(4096):
                pass

    def poke(self) -> None:
        """Wake the sleeping manager (from another thread)."""
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def close(self) -> None:
        """Close the socket (after the manager's run, and in a forked child)."""
        self._reader.close()
        self._writer.close()
