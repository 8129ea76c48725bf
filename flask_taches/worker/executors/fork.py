"""The fork executor (the default on POSIX): a child of the warm manager runs the task.

The child forgets the database connections it inherited (the store knows
how, for its database), becomes the leader of a session of its own (so a
signal meant for the manager's terminal or process group never reaches it,
and the manager can stop the task together with whatever it spawned), runs
the task with :func:`flask_taches.runner.run_claimed`, posts the end it
recorded on the :class:`~.end_hints.EndHintBoard` and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from flask import Flask

from ...exit_codes import EXIT_CRASHED, exit_code
from ...runner import run_claimed
from ...state import app_state
from ...store import Claimed, Store
from .base import Child, EndHint, Executor
from .end_hints import EndHintBoard, HintSlot

#: Linux: the kernel's OOM killer picks a task's process before its manager.
CHILD_OOM_SCORE_ADJ = b"500"


class ForkedChild(Child):
    """A forked task's process; once reaped, its hint is collected from the board."""

    def __init__(
        self,
        claimed: Claimed,
        pid: int,
        board: EndHintBoard | None = None,
        slot: HintSlot | None = None,
    ) -> None:
        super().__init__(claimed, pid)
        self._board = board
        self._slot = slot
        self._hint: EndHint | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Reaped elsewhere (e.g. SIGCHLD ignored): its status is lost.
            self.returncode = 255
        else:
            if pid == 0:
                return None
            self.returncode = os.waitstatus_to_exitcode(status)
        if self._board is not None and self._slot is not None:
            self._hint = self._board.collect(self._slot)  # once: it frees the slot
            self._slot = None
        return self.returncode

    def end_hint(self) -> EndHint | None:
        return self._hint


class ForkExecutor(Executor):
    """A child forked from the warm manager runs the task (POSIX only).

    ``after_fork`` runs first in the child: the manager closes there what must
    not be shared (its wake-up socket, its signal handlers).
    """

    name = "fork"
    forks = True

    def __init__(
        self,
        app: Flask,
        *,
        verbosity: int = 0,
        after_fork: Sequence[Callable[[], None]] = (),
    ) -> None:
        if not hasattr(os, "fork"):
            raise OSError("the fork executor needs POSIX; use --executor subprocess")
        self.app = app
        self.verbosity = verbosity
        self.after_fork = list(after_fork)
        self.board = EndHintBoard()
        self.store = app_state(app).store
        self.store.before_fork()

    def start(self, claimed: Claimed) -> Child:
        # Buffered output would otherwise be written twice, by parent and child.
        sys.stdout.flush()
        sys.stderr.flush()
        slot = self.board.reserve()  # None when full: the manager reads the row instead
        try:
            pid = os.fork()
        except OSError:
            if slot is not None:
                self.board.collect(slot)
            raise
        if pid == 0:
            self._child(claimed, slot)
        return ForkedChild(claimed, pid, self.board, slot)

    def _child(self, claimed: Claimed, slot: HintSlot | None) -> NoReturn:
        code = EXIT_CRASHED
        try:
            become_task_process(self.store, self.after_fork)
            with self.app.app_context():
                status = run_claimed(
                    claimed.id, claimed.attempt, verbosity=self.verbosity, row=claimed.row
                )
                code = exit_code(status)
            if slot is not None:
                self.board.post(slot, status)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):  # closed or broken streams: exit anyway
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def become_task_process(store: Store, after_fork: Sequence[Callable[[], None]]) -> None:
    """First thing in a child forked to run tasks (by this executor or the pool's).

    A session of its own, the manager's hooks (its wake-up socket, its signal
    handlers), the OOM killer's first pick, and none of the manager's
    database connections.
    """
    os.setsid()
    for hook in after_fork:
        hook()
    _raise_oom_score()
    store.forget_connections_after_fork()


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
