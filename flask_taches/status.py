"""The lifecycle of a task, as the strings stored in the ``status`` column."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Where a task stands. Members compare equal to their stored string."""

    #: Part of a chain: waits for the task before it to complete.
    WAITING = "WAITING"
    #: Ready: a manager will claim it once ``run_at`` has passed.
    TO_RUN = "TO_RUN"
    #: Claimed; its own process is running it (or about to).
    RUNNING = "RUNNING"
    #: The callable returned normally (anything but ``False``).
    COMPLETED = "COMPLETED"
    #: The callable raised, returned ``False``, or hit its timeout.
    FAILED = "FAILED"
    #: Its process died or stopped beating without recording an end.
    INTERRUPTED = "INTERRUPTED"
    #: Cancelled by a user before or while it ran.
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        # ``str, Enum`` would print "Status.TO_RUN"; templates and logs want the value.
        return self.value

    @property
    def is_finished(self) -> bool:
        """True once nothing will change the task without a restart."""
        return self in FINISHED


#: Statuses a task leaves only through :meth:`TachesExtension.restart`.
FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.INTERRUPTED, Status.CANCELLED})
#: Statuses still expected to change on their own (what status.js keeps polling).
UNFINISHED = frozenset({Status.WAITING, Status.TO_RUN, Status.RUNNING})
RESTARTABLE = frozenset({Status.FAILED, Status.INTERRUPTED, Status.CANCELLED})
CANCELLABLE = UNFINISHED
