"""What the executors whose task processes are forks of the warm manager share (fork, pool).

:class:`ForkingExecutor` holds the app, the store (which drops what a child
must not share before the first fork) and the manager's ``after_fork`` hooks;
:func:`become_task_process` is the first thing in every such child, and
:func:`leave_child` its way out.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from flask import Flask

from ...exit_codes import EXIT_CRASHED
from ...state import app_state
from ...store import Store
from .base import Executor

#: Linux: the kernel's OOM killer picks a task's process before its manager.
CHILD_OOM_SCORE_ADJ = b"500"


class ForkingExecutor(Executor):
    """An executor whose task processes are forks of the manager (POSIX only).

    ``after_fork`` runs first in each child: the manager closes there what
    must not be shared (its wake-up socket, its signal handlers).
    """

    forks = True

    def __init__(
        self,
        app: Flask,
        *,
        verbosity: int = 0,
        after_fork: Sequence[Callable[[], None]] = (),
    ) -> None:
        if not hasattr(os, "fork"):
            raise OSError(f"the {self.name} executor needs POSIX; use --executor subprocess")
        self.app = app
        self.verbosity = verbosity
        self.after_fork = list(after_fork)
        state = app_state(app)
        #: ``TACHES_KEEP_TASK_PROCESSES``: else what a task leaves running dies with it.
        self.keep_processes = bool(state.config["TACHES_KEEP_TASK_PROCESSES"])
        self.store = state.store
        self.store.before_fork()


def become_task_process(
    store: Store, after_fork: Sequence[Callable[[], None]], verbosity: int | None = None
) -> None:
    """First thing in a child forked to run tasks (by the fork executor or the pool's).

    None of the manager's database connections, a session of its own (a
    signal meant for the manager's terminal never reaches it, and the manager
    stops it together with what it spawned), the manager's hooks, and the
    OOM killer's first pick. ``verbosity`` 0 (the manager below ``-vv``): what
    the task prints goes to ``/dev/null``, not to the manager's output.
    """
    store.forget_connections_after_fork()
    os.setsid()
    for hook in after_fork:
        hook()
    _raise_oom_score()
    if verbosity == 0:
        _silence_output()


def flush_output() -> None:
    """Write what is buffered: before a fork (else parent and child both write it), or an exit."""
    with contextlib.suppress(BaseException):  # closed or broken streams: go on anyway
        sys.stdout.flush()
        sys.stderr.flush()


def leave_child(body: Callable[[], int]) -> NoReturn:
    """Run a forked child's ``body``, then leave with its exit code (a traceback: crashed)."""
    code = EXIT_CRASHED
    try:
        code = body()
    except BaseException:
        traceback.print_exc()
    finally:
        flush_output()
        os._exit(code)


def _silence_output() -> None:
    """Point the standard output and error at ``/dev/null``.

    At the file descriptors, so that what the task runs (C code,
    subprocesses) is silenced too; its logs are what it has to say.
    """
    flush_output()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)


def _raise_oom_score() -> None:
    """Make this process the OOM killer's first pick rather than its manager (Linux)."""
    # Not Linux, or no /proc: the kernel picks by size alone, which still favours the task.
    # os.open/os.write: a file object would cost the just-forked process more.
    with contextlib.suppress(OSError):
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, CHILD_OOM_SCORE_ADJ)
        finally:
            os.close(fd)
