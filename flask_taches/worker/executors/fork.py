"""The fork executor (the default on POSIX): a child of the warm manager runs the task.

The child forgets the database connections it inherited (the store knows
how, for its database) but the one its manager opened for it ahead of need
(:mod:`.next_connection`: PostgreSQL, MariaDB), becomes the leader of a
session of its own (so a signal meant for the manager's terminal or process
group never reaches it, and the manager can stop the task together with
whatever it spawned), runs the task with
:func:`flask_taches.runner.run_claimed`, posts the end it recorded on the
:class:`~.end_hints.EndHintBoard` and leaves with ``os._exit``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from ...exit_codes import exit_code
from ...processes import stop_leftovers
from ...runner import run_claimed
from ...store import Claimed
from .base import Child, EndHint
from .end_hints import EndHintBoard, HintSlot
from .forking import ForkingExecutor, become_task_process, flush_output, leave_child
from .next_connection import NextConnection


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
        if not self.keep_processes:
            stop_leftovers(self.pid)
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


class ForkExecutor(ForkingExecutor):
    """A child forked from the warm manager runs the task, then exits (POSIX only)."""

    name = "fork"

    def __init__(self, app: Flask, **options: Any) -> None:
        super().__init__(app, **options)
        self.board = EndHintBoard()
        self.next_connection = NextConnection(self.store)

    def start(self, claimed: Claimed) -> Child:
        flush_output()
        connection = self.next_connection.take()  # no thread runs past this line
        slot = self.board.reserve()  # None when full: the manager reads the row instead
        try:
            pid = os.fork()
        except OSError:
            if slot is not None:
                self.board.collect(slot)
            self.next_connection.close_unused(connection)
            raise
        if pid == 0:
            leave_child(lambda: self._child(claimed, slot, connection))
        self.next_connection.given(connection)
        self.next_connection.open_ahead()
        child = ForkedChild(claimed, pid, self.board, slot)
        child.keep_processes = self.keep_processes
        return child

    def close(self) -> None:
        self.next_connection.close()

    def _child(self, claimed: Claimed, slot: HintSlot | None, connection: Any) -> int:
        become_task_process(self.store, self.after_fork, self.verbosity)
        handover = self.next_connection.handover
        if connection is not None and handover is not None:
            handover.adopt(connection)  # its engine's first connection, opened by the manager
        with self.app.app_context():
            status = run_claimed(
                claimed.id, claimed.attempt, verbosity=self.verbosity, row=claimed.row
            )
        if slot is not None:
            self.board.post(slot, status)
        return exit_code(status)
