"""Inside one child of the pool: run the tasks its manager sends, one after another.

Each task runs exactly as in a forked child, through
:func:`~flask_taches.runner.run_claimed_reporting` in a fresh app context: its
own watchdog, log capture, mask of hidden parameters, fenced writes and
recorded end. Between two tasks it claims its next one itself
(:mod:`.pool_claims`), or waits on its task pipe when none is ready.

It leaves (and its manager forks a fresh one when it needs one):

* when its manager closes the task pipe, or dies: the pipe then reads as
  ended, after the running task has finished and recorded its end;
* after ``TACHES_MAX_TASKS_PER_CHILD`` tasks, or once its resident memory
  grew by more than ``TACHES_MAX_MEMORY_PER_CHILD`` megabytes since it was
  forked;
* after a task that was stopped (its timeout, a cancel, a signal, fencing):
  what the interrupted task left behind must not meet the next one;
* when the task crashes the process or calls ``os._exit``: then the manager
  sees the exit, as with a forked child.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

from flask import Flask

from ...processes import stop_own_children
from ...runner import run_claimed_reporting
from ...state import app_state
from .pool_claims import NextTasks
from .pool_pipes import post_result, receive_task

MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class ChildLimits:
    """When a pool child retires."""

    max_tasks: int = 1000
    #: Resident memory it may gain since its fork, in bytes; None: no limit.
    max_growth: int | None = None


@dataclass(frozen=True)
class ChildPipes:
    """The child's ends: tasks in, results out, and a wake-up of its manager."""

    tasks: int
    results: int
    #: A duplicate of the manager's wake-up socket, None when there is none.
    wake: int | None


def serve(
    app: Flask,
    pipes: ChildPipes,
    limits: ChildLimits,
    verbosity: int,
    keep_processes: bool,
    next_tasks: NextTasks | None = None,
) -> None:
    """Run the tasks that come through the task pipe, or that it claims, until a reason to leave.

    What a task started and left running is stopped when it ends, as with a
    fork per task, unless ``keep_processes`` (``TACHES_KEEP_TASK_PROCESSES``).
    """
    baseline = resident_bytes()
    done = 0
    claimed = receive_task(pipes.tasks)
    while claimed is not None:
        following = None
        with app.app_context():
            ran = run_claimed_reporting(
                claimed.id, claimed.attempt, verbosity=verbosity, row=claimed.row
            )
            done += 1
            if not keep_processes:
                stop_own_children()
            retiring = ran.stopped or done >= limits.max_tasks or _grew(baseline, limits)
            if not retiring and next_tasks is not None:
                following = next_tasks.claim(app_state(app).store, pipes.tasks)
        with contextlib.suppress(BaseException):  # closed or broken streams: go on
            sys.stdout.flush()
            sys.stderr.flush()
        post_result(pipes.results, ran.status, retiring, following)
        _wake(pipes.wake)
        if retiring:
            return
        # None: the manager is done with us, or gone
        claimed = following if following is not None else receive_task(pipes.tasks)


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak (other POSIX)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import resource  # POSIX only, as the pool is

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _grew(baseline: int, limits: ChildLimits) -> bool:
    return limits.max_growth is not None and resident_bytes() - baseline > limits.max_growth


def _wake(fd: int | None) -> None:
    """Tell the manager a result waits (its loop sleeps on that socket)."""
    if fd is not None:
        with contextlib.suppress(OSError):  # full (it is awake anyway) or gone
            os.write(fd, b"\0")
