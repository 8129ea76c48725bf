"""``SIGHUP``: the manager replaces itself with a fresh image of the same command.

A ``--forever`` manager keeps the code it imported when it started. After a
deploy, ``kill -HUP <pid>`` (systemd's ``ExecReload``) makes it:

1. stop claiming, as ``SIGTERM`` would, but leave its children running;
2. write what their rows still need from it: the pids no claim took along, the
   end of any child that exited without recording one;
3. ``exec`` the same command line (``sys.orig_argv``) in the same pid, the one
   systemd, Docker or supervisord watch, passing the pids of its running task
   processes in the environment, with the stop signals blocked: one sent while
   the new image starts waits for its handlers instead of killing it.

The new image is a new manager: it imports the deployed code, claims afresh,
and takes over nothing the old one started. Those task processes run on to
their own recorded end (they beat and record their end themselves, as always);
the rules for tasks whose manager is gone cover them (a dead one is rescued, one
stuck past its timeout is killed by :func:`~.orphans.kill_overdue_orphans`). To
the kernel they are still children of this pid, so the new image reaps them
(:class:`PreviousImage`), and when it is stopped it stops them as it stops its own:
after the drain grace ``SIGTERM``, then ``SIGKILL`` after the kill grace.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..processes import SIGKILL, signal_group
from .log import logger
from .stops import hold_requests

if TYPE_CHECKING:
    from .manager import Manager

#: The running task processes an image hands to the next one (comma-separated pids).
INHERITED_VARIABLE = "FLASK_TACHES_INHERITED_PIDS"


def reexec(manager: Manager) -> None:
    """After :meth:`Manager.run` returned with :attr:`Manager.reexec_ready`: this
    process becomes a new manager; returns only if the ``exec`` failed (logged)."""
    manager.store.engine.dispose()  # its connections end cleanly, not at the exec
    replace_process(manager.children.pids() | manager.previous.pids)


def replace_process(pids: Iterable[int]) -> None:
    """``exec`` this process's own command line anew, handing ``pids`` over; returns
    only if that fails (logged: the task processes run on to their end)."""
    environment = {**os.environ, INHERITED_VARIABLE: ",".join(str(p) for p in sorted(pids))}
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    logger.info(
        "re-executing manager %s: %s",
        os.getpid(),
        " ".join(argv),
        extra={"action": "reexec", "tache_id": None},
    )
    logging.shutdown()  # flush every handler: the new image starts with empty buffers
    sys.stdout.flush()
    sys.stderr.flush()
    hold_requests(True)  # the new image unblocks them once it handles them
    try:
        os.execve(sys.executable, argv, environment)
    except OSError as exc:
        hold_requests(False)
        logger.error(
            "could not re-execute the manager: %s; its task processes run on to their end",
            exc,
            extra={"action": "reexec_error", "tache_id": None},
        )


@dataclass
class PreviousImage:
    """The task processes a previous image of this manager left running: reaped and,
    when this manager stops, stopped; never supervised nor ended by it."""

    pids: set[int] = field(default_factory=set)
    #: Monotonic time each was sent SIGTERM.
    _terminated: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> PreviousImage:
        """What the previous image handed over (the variable is consumed: a child of
        this image must not believe it inherited anything)."""
        text = os.environ.pop(INHERITED_VARIABLE, "")
        pids = {int(part) for part in text.split(",") if part.strip().isdigit()}
        if pids:
            logger.info(
                "re-executed: %s task process(es) of the previous image run on: %s",
                len(pids),
                ", ".join(str(p) for p in sorted(pids)),
                extra={"action": "reexec", "tache_id": None},
            )
        return cls(pids)

    def __len__(self) -> int:
        return len(self.pids)

    def reap(self) -> int:
        """Collect those that exited (their rows hold their end, or are rescued); how many."""
        exited = 0
        for pid in list(self.pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # not a child of this process (any more): nothing to wait for
            if done:
                self.pids.discard(pid)
                self._terminated.pop(pid, None)
                exited += 1
        return exited

    def enforce(self, now: float, drain_until: float | None, kill_grace: float) -> None:
        """While stopping: SIGTERM once the drain grace is over, SIGKILL a grace later."""
        if drain_until is None or now < drain_until:
            return
        for pid in self.pids:
            since = self._terminated.get(pid)
            if since is None:
                signal_group(pid, signal.SIGTERM)
                self._terminated[pid] = now
            elif now >= since + kill_grace:
                signal_group(pid, SIGKILL)

    def due(self, drain_until: float | None, kill_grace: float) -> list[float]:
        """When :meth:`enforce` has something to do next (none, or one time)."""
        if not self.pids or drain_until is None:
            return []
        if len(self._terminated) < len(self.pids):
            return [drain_until]
        return [min(self._terminated.values()) + kill_grace]
