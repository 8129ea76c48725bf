"""What every executor gives its manager: a :class:`Child` to watch and to stop.

Either way the task's process beats from itself and records its own end: the
manager only watches it (:meth:`Child.poll`), stops it when it must
(:meth:`Child.signal`) and, once it is reaped, asks how it ended
(:meth:`Child.end_hint`, then the row).
"""

from __future__ import annotations

import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ...processes import signal_group
from ...status import Status
from ...store import Claimed


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` or ``was killed by signal 9 (SIGKILL)``."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    return f"was killed by signal {-returncode} ({name})"


@dataclass(frozen=True)
class EndHint:
    """What a task's process said of its end after :func:`run_claimed` returned.

    Only a hint: the row is the truth, and a child that posted none (it
    crashed, was killed, or cannot post) costs its manager one read of it.
    """

    #: The status it recorded; None when the attempt was not, or no longer, its own.
    status: Status | None


class Child(ABC):
    """One task's process, as its manager sees it."""

    def __init__(self, claimed: Claimed, pid: int) -> None:
        self.claimed = claimed
        self.pid = pid
        self.started = time.monotonic()
        #: Exit status once reaped: >= 0 an exit code, < 0 the signal that killed it.
        self.returncode: int | None = None
        #: ``TACHES_KEEP_TASK_PROCESSES``: else what the task left running dies with it.
        self.keep_processes = False

    @abstractmethod
    def poll(self) -> int | None:
        """Reap the process if it has ended; its return code, or None while it runs."""

    def end_hint(self) -> EndHint | None:
        """Once reaped: the end the process posted, or None (then read the row)."""
        return None

    def describe_end(self) -> str:
        """Once reaped: what became of its process, for the log."""
        assert self.returncode is not None
        return describe_exit(self.returncode)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the task's process group (the task and what it spawned)."""
        if self.returncode is not None:
            return  # reaped: the pid may belong to someone else now
        self._send(signum)

    def _send(self, signum: int) -> None:
        # A just-forked child may not lead its group yet: then the pid alone gets it.
        signal_group(self.pid, signum)


class Executor(ABC):
    """Starts a claimed task in a process of its own."""

    name: str
    #: Its task processes are forks of the manager: the manager preloads for
    #: them, records their pids, and counts their timeout from the start.
    forks: bool = False

    @abstractmethod
    def start(self, claimed: Claimed) -> Child:
        """Start the task's process; raises ``OSError`` when it cannot."""

    def may_claim(self, allowed: bool) -> None:
        """Whether its task processes may claim their next task (the manager claims now)."""
        return None  # only a pool's children take tasks themselves

    def self_started(self) -> list[Child]:
        """The tasks its processes claimed and started since the last call, for supervision."""
        return []

    def close(self) -> None:
        """After the manager's run: release what the executor keeps between tasks."""
        return None  # the fork and subprocess executors keep nothing
