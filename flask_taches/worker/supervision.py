"""One child under its manager's supervision: when to stop it, and how far the stop went.

The task's own process stops itself at its timeout or cancel, and leaves
when its row is no longer its attempt's; the manager is the backstop when it
does not. A stop is first *decided*: a :class:`Deadline` (the earliest one
stands) saying when, why, and what to record if the row is still this
attempt's. It is then carried out in :class:`Phase` order: SIGTERM when the
deadline comes, SIGKILL ``kill_grace`` seconds later. Nothing here does I/O:
:meth:`SupervisedChild.advance` says which signal is due, the manager sends it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from ..processes import SIGKILL
from ..status import Status
from ..store import Claimed
from .executors import Child, describe_exit
from .options import ManagerOptions

BACKSTOP_MARGIN = 1.0  # seconds the manager waits beyond the runner's own grace


class Phase(Enum):
    """How far the manager went in stopping a child."""

    #: No stop decided: the task runs.
    RUNNING = "running"
    #: A deadline is set and has not come yet.
    STOP_DECIDED = "stop decided"
    #: SIGTERM sent; SIGKILL is due at :attr:`SupervisedChild.kill_at`.
    TERMINATED = "terminated"
    #: SIGKILL sent: only the exit is awaited.
    KILLED = "killed"


@dataclass(frozen=True)
class Verdict:
    """The end the manager records for a child it stopped, if its row is still the attempt's."""

    status: Status
    message: str


@dataclass(frozen=True)
class Deadline:
    """When the manager stops a child, why, and what it records then."""

    at: float  # monotonic
    message: str
    #: The status to record with ``message``; None: nothing to record (the row
    #: is no longer this attempt's anyway).
    status: Status | None = None
    #: Record the verdict before the SIGTERM: the task's own process failed to
    #: (it may still catch the signal, and must not then record another reason).
    record_first: bool = False

    @property
    def verdict(self) -> Verdict | None:
        return None if self.status is None else Verdict(self.status, self.message)


@dataclass(frozen=True)
class StopSignal:
    """A signal :meth:`SupervisedChild.advance` found due, and what goes with it."""

    signum: int
    name: str
    why: str
    #: Record this end now, before sending the signal.
    record_first: Verdict | None = None


class SupervisedChild:
    """A child of this manager and what the manager decided about it."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.phase = Phase.RUNNING
        #: The earliest stop decided so far.
        self.deadline: Deadline | None = None
        #: Monotonic time of the SIGKILL, once SIGTERM has been sent.
        self.kill_at: float | None = None
        #: What to record if it dies without an end of its own (set with the SIGTERM).
        self.verdict: Verdict | None = None
        #: Whether the timeout backstop counts yet (a spawned process must start first).
        self.timeout_armed = False
        #: Whether its row was seen no longer this attempt's (ended or superseded).
        self.released = False

    @property
    def claimed(self) -> Claimed:
        return self.child.claimed

    # -- deciding ------------------------------------------------------------------------

    def decide_stop(
        self, at: float, message: str, status: Status | None = None, *, record_first: bool = False
    ) -> None:
        """Decide to stop the child at ``at``; an earlier decision, or a stop begun, stands."""
        if self.phase in (Phase.TERMINATED, Phase.KILLED):
            return
        if self.deadline is None or at < self.deadline.at:
            self.deadline = Deadline(at, message, status, record_first)
            self.phase = Phase.STOP_DECIDED

    def arm_timeout(self, since: float, options: ManagerOptions) -> None:
        """The backstop of the task's timeout, counted from when its process started it.

        The runner stops a task at its timeout and gives up after KILL_GRACE;
        the manager steps in only if that process is itself stuck.
        """
        self.timeout_armed = True
        timeout = self.claimed.timeout
        if timeout:
            self.decide_stop(
                since + timeout + options.kill_grace + BACKSTOP_MARGIN,
                f"timeout after {timeout:g} s: the task's process did not stop "
                "itself; stopped by the manager",
                Status.FAILED,
                record_first=True,
            )

    def cancel_ignored(self, now: float, who: str, asked: datetime) -> None:
        """The task's process let a cancel go unheeded past its manager's patience."""
        message = (
            f"cancelled by {who} at {asked.isoformat(timespec='seconds')}; the task's "
            "process did not stop itself: stopped by the manager"
        )
        self.decide_stop(now, message, Status.CANCELLED, record_first=True)

    def release(self, now: float, options: ManagerOptions) -> None:
        """The row is no longer this attempt's: its process must leave, and soon.

        Either its end is recorded (it is exiting; an interpreter may take a
        moment) or it was declared dead and replaced (its runner notices at the
        next beat and stops itself). Past that, it is killed.
        """
        if self.released:
            return
        self.released = True
        patience = max(options.heartbeat_timeout, options.heartbeat + options.kill_grace)
        self.decide_stop(
            now + patience + BACKSTOP_MARGIN,
            f"the row is no longer this attempt's and the process has not left "
            f"in {patience + BACKSTOP_MARGIN:g} s",
        )

    def drain_over(self, now: float, options: ManagerOptions) -> None:
        """The manager was asked to stop and the task outlived the drain grace."""
        message = (
            "stopped by the manager: it was asked to stop and the task outlived "
            f"the drain grace of {options.drain_grace:g} s"
        )
        self.decide_stop(now, message, Status.INTERRUPTED)

    # -- carrying out --------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When :meth:`advance` has something to do next, None if nothing is planned."""
        if self.phase is Phase.TERMINATED:
            return self.kill_at
        if self.phase is Phase.STOP_DECIDED and self.deadline is not None:
            return self.deadline.at
        return None

    def advance(self, now: float, kill_grace: float) -> StopSignal | None:
        """Enter the next phase if its time has come; the signal to send for it."""
        if self.phase is Phase.STOP_DECIDED and self.deadline and now >= self.deadline.at:
            deadline = self.deadline
            self.phase = Phase.TERMINATED
            self.kill_at = now + kill_grace
            self.verdict = deadline.verdict
            first = self.verdict if deadline.record_first else None
            return StopSignal(signal.SIGTERM, "SIGTERM", deadline.message, first)
        if self.phase is Phase.TERMINATED and self.kill_at is not None and now >= self.kill_at:
            self.phase = Phase.KILLED
            return StopSignal(SIGKILL, "SIGKILL", f"still there {kill_grace:g} s later")
        return None

    def end_to_record(self) -> Verdict:
        """What to record for it once reaped with its row still this attempt's."""
        if self.verdict is not None:
            return self.verdict
        returncode = self.child.returncode
        assert returncode is not None, "only a reaped child has an end to record"
        return Verdict(
            Status.INTERRUPTED,
            f"process {self.child.pid} {describe_exit(returncode)} without recording an end",
        )
