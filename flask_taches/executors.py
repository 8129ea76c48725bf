"""How the manager runs one claimed task away from itself: a fork, or a new process.

:class:`ForkExecutor` (the default on POSIX) forks the warm manager; the child
drops the database connections it inherited, becomes the leader of a session
of its own (so a signal meant for the manager's terminal or process group
never reaches it, and the manager can stop the task together with whatever it
spawned), runs the task with :func:`flask_taches.runner.run_claimed` and
leaves with ``os._exit``. :class:`SubprocessExecutor` spawns
``flask taches run ID --attempt N`` with the manager's own application, as the
bundle does; it is portable and the only choice on Windows.

Either way the task's process beats from itself and records its own end: the
manager only watches it (:meth:`Child.poll`) and stops it when it must
(:meth:`Child.signal`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import struct
import subprocess
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NoReturn

from flask import Flask

from .exceptions import ConfigurationError
from .runner import run_claimed
from .state import app_state
from .status import Status
from .store import Claimed
from .store.fast import forget_pool_after_fork

EXIT_COMPLETED = 0  # the task's end is recorded: COMPLETED
EXIT_ENDED = 1  # the task's end is recorded: another status
EXIT_NOT_RUN = 2  # the attempt was not (or no longer) this process's
EXIT_CRASHED = 3  # the child failed outside the task (its traceback is on stderr)
#: Linux: the kernel's OOM killer picks a task's process before its manager.
CHILD_OOM_SCORE_ADJ = b"500"
IS_WINDOWS = sys.platform == "win32"
END_BOARD_SLOTS = 4096  # forked children a manager can hear from at once (8 bytes each)
_SLOT = struct.Struct("<Q")  # a token (the high 56 bits) and a status code (the low 8)
_NOT_RUN_CODE = 0xFF  # the attempt was not, or no longer, this process's
_STATUSES = list(Status)


def exit_code(status: Status | None) -> int:
    """The exit code of a task's process after :func:`run_claimed` returned ``status``."""
    if status is None:
        return EXIT_NOT_RUN
    return EXIT_COMPLETED if status is Status.COMPLETED else EXIT_ENDED


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` or ``was killed by signal 9 (SIGKILL)``."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    return f"was killed by signal {-returncode} ({name})"


class EndBoard:
    """Memory shared with forked children, where each says its end is recorded.

    Its manager then need not read the row back after the exit. One 8-byte
    slot per running child: zeroed before the fork, written by the child once
    :func:`run_claimed` has returned (the end stored, or nothing to store).
    A child that dies or leaves any other way (a crash, the task calling
    ``os._exit``, a signal) leaves it zero, and the manager reads the row.
    """

    def __init__(self, slots: int = END_BOARD_SLOTS) -> None:
        self._map = mmap.mmap(-1, slots * _SLOT.size)  # shared and anonymous
        self._free = list(range(slots - 1, -1, -1))
        self._tokens = 0

    def take(self) -> tuple[int, int] | None:
        """A zeroed slot and a fresh token for the next child; None when all are taken."""
        if not self._free:
            return None
        slot = self._free.pop()
        self._tokens += 1
        _SLOT.pack_into(self._map, slot * _SLOT.size, 0)
        return slot, self._tokens

    def post(self, place: tuple[int, int], status: Status | None) -> None:
        """In the child, after its end is recorded (``status``) or found not its own (None)."""
        slot, token = place
        code = _NOT_RUN_CODE if status is None else _STATUSES.index(status)
        _SLOT.pack_into(self._map, slot * _SLOT.size, token << 8 | code)

    def collect(self, place: tuple[int, int]) -> tuple[bool, Status | None]:
        """In the manager, once the child is reaped: (posted, status); frees the slot."""
        slot, token = place
        (value,) = _SLOT.unpack_from(self._map, slot * _SLOT.size)
        self._free.append(slot)
        if value >> 8 != token:
            return False, None
        code = value & 0xFF
        return True, None if code == _NOT_RUN_CODE else _STATUSES[code]


class Child(ABC):
    """One task's process, as its manager sees it."""

    def __init__(self, claimed: Claimed, pid: int) -> None:
        self.claimed = claimed
        self.pid = pid
        self.started = time.monotonic()
        #: Exit status once reaped: >= 0 an exit code, < 0 the signal that killed it.
        self.returncode: int | None = None
        #: Once reaped: the process said its end is recorded (or not its own to record).
        self.end_known = False
        #: With ``end_known``: the status it stored, None when the row was not its own.
        self.ended_as: Status | None = None

    @abstractmethod
    def poll(self) -> int | None:
        """Reap the process if it has ended; its return code, or None while it runs."""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the task's process group (the task and what it spawned)."""
        if self.returncode is not None:
            return  # reaped: the pid may belong to someone else now
        if IS_WINDOWS:
            self._signal_windows(signum)
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            # The child may not have made its own group yet (just forked).
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def _signal_windows(self, signum: int) -> None:
        # Windows has no fork: ManagerOptions refuses that executor there.
        raise ConfigurationError("only the subprocess executor runs on Windows")


class ForkedChild(Child):
    def __init__(
        self,
        claimed: Claimed,
        pid: int,
        board: EndBoard | None = None,
        place: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(claimed, pid)
        self._board = board
        self._place = place

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
        if self._board is not None and self._place is not None:
            self.end_known, self.ended_as = self._board.collect(self._place)
            self._place = None
        return self.returncode


class SpawnedChild(Child):
    def __init__(self, claimed: Claimed, process: subprocess.Popen[bytes]) -> None:
        super().__init__(claimed, process.pid)
        self.process = process

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.process.poll()
        return self.returncode

    def _signal_windows(self, signum: int) -> None:
        if signum == getattr(signal, "SIGKILL", None):
            self.process.kill()
        else:
            self.process.terminate()


class Executor(ABC):
    """Starts a claimed task in a process of its own."""

    name: str

    @abstractmethod
    def start(self, claimed: Claimed) -> Child:
        """Start the task's process; raises ``OSError`` when it cannot."""


class ForkExecutor(Executor):
    """A child forked from the warm manager runs the task (POSIX only).

    ``after_fork`` runs first in the child: the manager closes there what must
    not be shared (its wake-up socket, its signal handlers).
    """

    name = "fork"

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
        self.board = EndBoard()
        app_state(app).store.before_fork()

    def start(self, claimed: Claimed) -> Child:
        # Buffered output would otherwise be written twice, by parent and child.
        sys.stdout.flush()
        sys.stderr.flush()
        place = self.board.take()
        try:
            pid = os.fork()
        except OSError:
            if place is not None:
                self.board.collect(place)
            raise
        if pid == 0:
            self._child(claimed, place)
        return ForkedChild(claimed, pid, self.board, place)

    def _child(self, claimed: Claimed, place: tuple[int, int] | None) -> NoReturn:
        code = EXIT_CRASHED
        try:
            os.setsid()
            for hook in self.after_fork:
                hook()
            _raise_oom_score()
            self._forget_connections()
            with self.app.app_context():
                status = run_claimed(
                    claimed.id, claimed.attempt, verbosity=self.verbosity, row=claimed.row
                )
                code = exit_code(status)
            if place is not None:
                self.board.post(place, status)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):  # closed or broken streams: exit anyway
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _forget_connections(self) -> None:
        """Drop the parent's pooled connections without closing them (they are its own)."""
        state = app_state(self.app)
        forget_pool_after_fork(state.db.engine)
        if state.built_store is not None:
            state.built_store.forget_connections_after_fork()


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


class SubprocessExecutor(Executor):
    """Spawns ``flask taches run ID --attempt N`` with the manager's application.

    ``app_import_path`` is the manager's own ``--app`` (or ``FLASK_APP``); the
    environment (``.env`` already loaded into it) is passed on as it is.
    """

    name = "subprocess"

    def __init__(self, app_import_path: str | None, *, verbosity: int = 0) -> None:
        self.app_import_path = app_import_path
        self.verbosity = verbosity

    def command(self, claimed: Claimed) -> list[str]:
        args = [sys.executable, "-m", "flask"]
        if self.app_import_path:
            args += ["--app", self.app_import_path]
        args += ["taches", "run", str(claimed.id), "--attempt", str(claimed.attempt)]
        if self.verbosity:
            args.append("-" + "v" * self.verbosity)
        return args

    def start(self, claimed: Claimed) -> Child:
        sys.stdout.flush()
        sys.stderr.flush()
        command = self.command(claimed)
        if IS_WINDOWS:
            group = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined,unused-ignore]
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, close_fds=True, creationflags=group
            )
        else:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, close_fds=True, start_new_session=True
            )
        return SpawnedChild(claimed, process)
