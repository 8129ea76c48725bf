"""What a manager is asked to do by signals: stop (drain), or re-execute itself.

``SIGTERM`` and ``SIGINT`` (and :meth:`Manager.request_stop`) stop the claiming,
then give running tasks ``TACHES_DRAIN_GRACE`` to finish; a second request
cuts it short. ``SIGHUP`` stops the claiming too, but leaves the children
running: once their rows need nothing more of it, the manager re-executes
(:mod:`.reexec`). Handlers only count here: the loop logs and acts (a handler
may run mid-statement).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from ..processes import Handler
from .log import logger

SIGCHLD: int | None = getattr(signal, "SIGCHLD", None)
SIGHUP: int | None = getattr(signal, "SIGHUP", None)

#: Every signal the manager handles: a forked child puts their defaults back.
HANDLED = tuple(s for s in (signal.SIGTERM, signal.SIGINT, SIGHUP, SIGCHLD) if s is not None)
#: The requests, which a re-executing image blocks until the new one handles them.
REQUESTS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, SIGHUP) if s is not None)


def hold_requests(held: bool) -> None:
    """Block (or unblock) the request signals in this thread; the mask survives an
    ``exec``, so a stop sent while the new image starts waits for its handlers
    instead of killing it with its inherited task processes."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK if held else signal.SIG_UNBLOCK, REQUESTS)


@dataclass
class StopRequests:
    """Stops asked and acted upon, and whether the last one asks to re-execute."""

    asked: int = 0
    handled: int = 0
    signum: int | None = None
    #: The last request was SIGHUP: re-execute instead of draining.
    reexec: bool = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.asked += 1
        self.signum = signum
        self.reexec = signum == SIGHUP

    def handlers(self, on_child: Callable[[int, FrameType | None], None]) -> dict[int, Handler]:
        """The manager's handlers: these requests, and ``on_child`` for SIGCHLD."""
        handlers: dict[int, Handler] = {
            s: self.on_signal for s in (signal.SIGTERM, signal.SIGINT) if s is not None
        }
        if SIGHUP is not None and signal.getsignal(SIGHUP) is not signal.SIG_IGN:
            handlers[SIGHUP] = self.on_signal  # under nohup, a hangup stays ignored
        if SIGCHLD is not None:
            handlers[SIGCHLD] = on_child
        return handlers

    def announce(self, running: int, grace: float | None) -> None:
        """Log the request acted upon (``grace`` None: a re-execution)."""
        name = signal.Signals(self.signum).name if self.signum else "a request"
        if grace is None:
            message = "%s received: no more claims; re-executing, %s running task(s) run on"
            logger.info(message, name, running, extra={"action": "stopping", "tache_id": None})
            return
        logger.info(
            "%s received: no more claims; %s running task(s) get %.1f s to finish",
            name,
            running,
            grace,
            extra={"action": "stopping", "tache_id": None},
        )
