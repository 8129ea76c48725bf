"""The exit code of a process that ran one task: ``flask taches run``, or an executor's child.

One table for all of them, so that a manager reading a spawned ``run``'s exit
code and a user reading it in a shell agree:

* 0: the task COMPLETED;
* 1: its end is recorded as anything else (FAILED, INTERRUPTED, CANCELLED, or
  TO_RUN again with a retry scheduled);
* 2: nothing to run here: an unknown id, a task not TO_RUN, a refused method,
  or an attempt that no longer belongs to this process (declared dead elsewhere);
* 3: the process failed outside the task itself (its traceback is on stderr).
"""

from __future__ import annotations

from .status import Status

EXIT_COMPLETED = 0
EXIT_ENDED = 1
EXIT_NOT_RUN = 2
EXIT_CRASHED = 3


def exit_code(status: Status | None) -> int:
    """The exit code after a run whose end was stored as ``status`` (None: not this run's)."""
    if status is None:
        return EXIT_NOT_RUN
    return EXIT_COMPLETED if status is Status.COMPLETED else EXIT_ENDED
