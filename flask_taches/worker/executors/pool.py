"""The pool executor: long-lived children of the warm manager run tasks one after another.

For many small tasks (mails, webhooks), where a fork per task costs more
than the task. Each child is forked from the warm manager as the fork
executor's are (a session of its own, none of the manager's database
connections, see :func:`~.forking.become_task_process`), then serves tasks
through its pipes (:mod:`.pool_pipes`, :mod:`.pool_child`). The manager still
never runs a task, and supervises each task as it does a forked child's:

* a :class:`PooledChild` is one task in one pool child; it ends when the
  child posts its result, or when the child dies (then its exit is the
  task's, and the row tells the rest, as for any child);
* a signal for the task goes to the child's process group: a crash, a
  timeout or a cancel kills that child only, and the next task that needs
  one gets a fresh fork;
* the task's pid in its row is the child's, so the rescue's pid check, the
  heartbeats and the fencing work unchanged; a ``kill -9`` of the manager
  lets each child finish its task, record its end, and leave.

Children are forked when a task finds none idle, so there are never more
than ``--max``. A child whose task has ended claims its next task itself
while its manager claims (:mod:`.pool_claims`), and says which with its
result: the manager then supervises that task in that child
(:meth:`PoolExecutor.self_started`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence

from flask import Flask

from ...exit_codes import exit_code
from ...processes import stop_leftovers
from ...store import Claimed
from .base import Child, EndHint
from .forking import ForkingExecutor, become_task_process, flush_output, leave_child
from .pool_child import ChildLimits, ChildPipes, serve
from .pool_claims import ClaimRules, NextTasks
from .pool_pipes import TaskResult, read_result, send_task

#: Seconds a closing pool waits for its children to leave.
CLOSE_WAIT = 5.0


class PoolProcess:
    """One child of the pool as its manager sees it: its pid and the manager's pipe ends."""

    def __init__(self, pid: int, tasks_fd: int, results_fd: int, keep_processes: bool) -> None:
        self.pid = pid
        self.keep_processes = keep_processes
        self.tasks_fd = tasks_fd
        self.results_fd = results_fd
        self.returncode: int | None = None
        self._open = True

    def fds(self) -> tuple[int, ...]:
        return (self.tasks_fd, self.results_fd) if self._open else ()

    def reap(self) -> int | None:
        """Its exit status once it has left (reaped here), None while it lives."""
        if self.returncode is None:
            if not self.keep_processes:
                stop_leftovers(self.pid)  # what its tasks detached dies with it
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 255
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        """Close the manager's ends: an idle child reads the end of its pipe and leaves."""
        if self._open:
            self._open = False
            for fd in (self.tasks_fd, self.results_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)


class PooledChild(Child):
    """One task running in one child of the pool."""

    def __init__(self, claimed: Claimed, process: PoolProcess, pool: PoolExecutor) -> None:
        super().__init__(claimed, process.pid)
        self._process = process
        self._pool = pool
        self._result: TaskResult | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        process = self._process
        result = read_result(process.results_fd)
        if result is None:
            if process.reap() is None:
                return None
            result = read_result(process.results_fd)  # posted just before it left?
        if result is None:
            assert process.returncode is not None
            self.returncode = process.returncode
        else:
            self._result = result
            self.returncode = exit_code(result.hint.status if result.hint else None)
        self._pool.task_over(process, result)
        return self.returncode

    def end_hint(self) -> EndHint | None:
        return self._result.hint if self._result is not None else None

    def describe_end(self) -> str:
        if self._result is None:
            return super().describe_end()
        if self._result.following is not None:
            return f"took task {self._result.following.id} next"
        return "left the pool after it" if self._result.retiring else "back in the pool"


class PoolExecutor(ForkingExecutor):
    """Long-lived children forked from the warm manager run the tasks (POSIX only).

    ``after_fork`` runs first in each child, as in the fork executor's;
    ``wake_fd`` is the manager's wake-up socket, which a child writes to once
    it has posted a result; with ``claim_rules`` (the manager's) a child
    whose task has ended claims its next one itself (:mod:`.pool_claims`)
    where the store's claims are cheap to run one by one (SQLite).
    """

    name = "pool"

    def __init__(
        self,
        app: Flask,
        *,
        verbosity: int = 0,
        after_fork: Sequence[Callable[[], None]] = (),
        wake_fd: int | None = None,
        limits: ChildLimits | None = None,
        claim_rules: ClaimRules | None = None,
    ) -> None:
        super().__init__(app, verbosity=verbosity, after_fork=after_fork)
        self.wake_fd = wake_fd
        self.limits = limits or ChildLimits()
        # Where claims are costly to serialise (a server's lock held across round
        # trips: PostgreSQL, MariaDB), the children would queue on the claim lock,
        # and the manager's batched claim serves them better.
        cheap = self.store.cheap_single_claims
        self.next_tasks = NextTasks(claim_rules) if claim_rules and cheap else None
        self._idle: list[PoolProcess] = []
        self._busy: dict[int, PoolProcess] = {}
        self._leaving: list[PoolProcess] = []
        self._self_started: list[Child] = []

    def start(self, claimed: Claimed) -> Child:
        self._reap_leaving()
        process = self._take_idle()
        if process is not None:
            try:
                send_task(process.tasks_fd, claimed)
            except OSError:  # it died since it was last seen idle
                self._drop(process)
                process = None
        if process is None:
            process = self._fork()
            try:
                send_task(process.tasks_fd, claimed)
            except OSError:  # it died at once: the manager records why the task did not start
                self._drop(process)
                raise
        self._busy[process.pid] = process
        return PooledChild(claimed, process, self)

    def task_over(self, process: PoolProcess, result: TaskResult | None) -> None:
        """From :meth:`PooledChild.poll`: on to the task it claimed, back to idle, or gone."""
        if result is not None and result.following is not None:
            self._self_started.append(PooledChild(result.following, process, self))
            return  # still busy, with that task now
        self._busy.pop(process.pid, None)
        if result is not None and not result.retiring and process.returncode is None:
            self._idle.append(process)
        else:
            self._drop(process)

    def may_claim(self, allowed: bool) -> None:
        if self.next_tasks is not None:
            self.next_tasks.allow(allowed)

    def self_started(self) -> list[Child]:
        started, self._self_started = self._self_started, []
        return started

    def close(self) -> None:
        """Let every child go, and reap those that had no task.

        A child still running a task (the manager re-executes itself on SIGHUP,
        or was stopped by an error) finishes it, records its end and leaves on
        its own; its manager's next image reaps it, as a forked child's.
        """
        self.may_claim(False)
        for process in self._busy.values():
            process.close()
        self._leaving.extend(self._idle)
        self._idle, self._busy = [], {}
        for process in self._leaving:
            process.close()
        deadline = time.monotonic() + CLOSE_WAIT
        while self._leaving and time.monotonic() < deadline:
            self._reap_leaving()
            if self._leaving:
                time.sleep(0.01)

    @property
    def size(self) -> int:
        """Children alive or not yet reaped (for the tests and the log)."""
        return len(self._idle) + len(self._busy) + len(self._leaving)

    # -- children ------------------------------------------------------------------------

    def _take_idle(self) -> PoolProcess | None:
        """The child idle the shortest time (its caches are the warmest), if any lives."""
        while self._idle:
            process = self._idle.pop()
            if process.reap() is None:
                return process
            self._drop(process)
        return None

    def _drop(self, process: PoolProcess) -> None:
        process.close()
        if process.reap() is None:
            self._leaving.append(process)  # it leaves soon: reaped later

    def _reap_leaving(self) -> None:
        self._leaving = [p for p in self._leaving if p.reap() is None]

    def _open_fds(self) -> Iterator[int]:
        for process in (*self._idle, *self._busy.values()):
            yield from process.fds()

    def _fork(self) -> PoolProcess:
        tasks_read, tasks_write = os.pipe()
        results_read, results_write = os.pipe()
        # The child must hold no end of another child's pipes, nor the manager's ends
        # of its own: else a child would never read the end of its task pipe.
        theirs = [*self._open_fds(), tasks_write, results_read]
        flush_output()
        try:
            pid = os.fork()
        except OSError:
            for fd in (tasks_read, tasks_write, results_read, results_write):
                os.close(fd)
            raise
        if pid == 0:
            leave_child(lambda: self._child(tasks_read, results_write, theirs))
        os.close(tasks_read)
        os.close(results_write)
        os.set_blocking(results_read, False)
        return PoolProcess(pid, tasks_write, results_read, self.keep_processes)

    def _child(self, tasks: int, results: int, theirs: list[int]) -> int:
        # Before the hooks close the manager's socket: a copy to wake it with.
        wake = os.dup(self.wake_fd) if self.wake_fd is not None else None
        for fd in theirs:
            os.close(fd)
        become_task_process(self.store, self.after_fork, self.verbosity)
        self.store.keep_connections()  # it forks no other child: none can share them
        pipes = ChildPipes(tasks, results, wake)
        serve(self.app, pipes, self.limits, self.verbosity, self.keep_processes, self.next_tasks)
        return 0
