"""The manager (``flask taches start``): claim ready tasks, run each in its own process.

It lives ``loop`` x ``sleep`` seconds (so that cron every minute keeps one
alive) or until stopped with ``forever``. Within that time it claims whenever a
slot is free and a task is ready, in batches, never more than ``max_running``
RUNNING across every manager of the database (the store enforces it inside the
claim). An idle manager sleeps on the store's listener (NOTIFY on PostgreSQL,
``PRAGMA data_version`` on SQLite, a poll every ``TACHES_POLL`` otherwise) and on
a socket its signal handlers write to, so a new task, a child's exit or a stop
request wakes it at once.

The task's own process beats and records its end; the manager is the backstop:

* a child that exits without an end recorded ends INTERRUPTED at once, with its
  exit code or signal in the log (and is retried when attempts remain);
* a child past its ``timeout`` + ``TACHES_KILL_GRACE`` (+ a margin) is SIGKILLed
  and ends FAILED; one whose cancel was asked and ignored is SIGKILLed and ends
  CANCELLED; one whose row another manager declared dead is SIGKILLed;
* every ``min(TACHES_HEARTBEAT, sleep)`` it rescues RUNNING tasks of any
  manager whose heartbeat is too old, or whose process on this host is gone.

SIGTERM or SIGINT stops the claiming; running tasks get ``TACHES_DRAIN_GRACE``
seconds to finish (a second signal cuts it short), then SIGTERM, then SIGKILL
after ``TACHES_KILL_GRACE``. Children live in sessions of their own, so a
``kill -9`` of the manager leaves them running to their end.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .exceptions import ConfigurationError, TacheError
from .executors import (
    Child,
    Executor,
    ForkExecutor,
    SubprocessExecutor,
    describe_exit,
)
from .methods import check_allowed
from .models import utcnow
from .processes import pid_alive, started_near
from .state import app_state
from .status import Status
from .store import Claimed, Store, WakeSource

BACKSTOP_MARGIN = 1.0  # seconds the manager waits beyond the runner's own grace
MIN_WAIT = 0.002  # seconds: the loop never spins faster than this
CHILD_POLL = 0.05  # seconds between child checks where no SIGCHLD wakes us (Windows, threads)
DB_ERROR_BACKOFF = 1.0  # seconds before claiming again after a database error
RELISTEN_DELAY = 10.0  # seconds before listening again after the listener broke
#: Seconds a forked child's pid may wait to be written with the next claim
#: (one transaction for both) before it is written on its own.
PID_DELAY = 0.05
EXECUTORS = ("fork", "subprocess")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerOptions:
    """What ``flask taches start`` takes; defaults come from the ``TACHES_*`` settings."""

    loop: int = 10
    sleep: float = 6.0
    max_running: int = 5
    queues: tuple[str, ...] = ()
    executor: str = "fork"
    forever: bool = False
    poll: float = 0.2
    heartbeat: float = 5.0
    heartbeat_timeout: float = 30.0
    kill_grace: float = 5.0
    drain_grace: float = 30.0
    verbosity: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> ManagerOptions:
        """The app's settings, then every override that is not None."""
        values: dict[str, Any] = {
            "loop": config["TACHES_LOOP"],
            "sleep": config["TACHES_SLEEP"],
            "max_running": config["TACHES_MAX"],
            "queues": tuple(config["TACHES_QUEUES"] or ()),
            "executor": config["TACHES_EXECUTOR"],
            "poll": config["TACHES_POLL"],
            "heartbeat": config["TACHES_HEARTBEAT"],
            "heartbeat_timeout": config["TACHES_HEARTBEAT_TIMEOUT"],
            "kill_grace": config["TACHES_KILL_GRACE"],
            "drain_grace": config["TACHES_DRAIN_GRACE"],
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigurationError(f"executor {self.executor!r}: use 'fork' or 'subprocess'")
        if self.loop < 1 or self.max_running < 1:
            raise ConfigurationError("--loop and --max must be at least 1")
        if min(self.sleep, self.poll, self.heartbeat, self.kill_grace, self.drain_grace) < 0:
            raise ConfigurationError("durations must not be negative")

    @property
    def check_every(self) -> float:
        """Seconds between two rescue/supervision passes."""
        return max(0.05, min(self.heartbeat, self.sleep or self.heartbeat))


@dataclass(frozen=True)
class Deadline:
    """When the manager stops a child, and what it records if the row is still its.

    Stopping is SIGTERM, then SIGKILL ``TACHES_KILL_GRACE`` seconds later.
    """

    at: float  # monotonic
    status: Status | None
    message: str
    #: Record ``status`` before the SIGTERM: the task's own process failed to (it
    #: may still catch the signal, and must not then record another reason).
    record_first: bool = False


@dataclass
class Watched:
    """A child of this manager and what the manager decided about it."""

    child: Child
    #: The earliest stop decided so far.
    deadline: Deadline | None = None
    #: Monotonic time of the SIGKILL, once SIGTERM has been sent.
    kill_after: float | None = None
    #: What to record if it dies without an end of its own (set when the manager acts).
    verdict: tuple[Status, str] | None = None
    #: Monotonic time the row was seen no longer this attempt's (ended or superseded).
    released_at: float | None = None
    signals: list[str] = field(default_factory=list)
    #: Whether the timeout backstop counts yet (a spawned process must start first).
    armed: bool = False

    @property
    def claimed(self) -> Claimed:
        return self.child.claimed

    def stop_at(
        self, at: float, status: Status | None, message: str, *, record_first: bool = False
    ) -> None:
        """Decide to stop the child at ``at``; an earlier decision already made stands."""
        if self.deadline is None or at < self.deadline.at:
            self.deadline = Deadline(at, status, message, record_first)


def _kill_process_group(pid: int) -> None:
    """SIGKILL a task's process and its own children (a forked task leads its group)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, _SIGKILL)
        else:
            os.kill(pid, _SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # gone meanwhile, or not ours to kill: the rescue will see it


def _cpu_seconds() -> tuple[float, float]:
    """CPU used by this process, and by the children it has reaped."""
    own, children = os.times()[:2], os.times()[2:4]
    return sum(own), sum(children)


class Manager:
    """One manager process. Build it in an app context; :meth:`run` it in the main thread."""

    def __init__(
        self,
        app: Flask,
        options: ManagerOptions,
        *,
        executor: Executor | None = None,
        app_import_path: str | None = None,
        hostname: str | None = None,
    ) -> None:
        self.app = app
        self.options = options
        state = app_state(app)
        self.store: Store = state.store
        self.allowed_modules = state.allowed_modules
        self.hostname = hostname or socket.gethostname()
        self.children: dict[int, Watched] = {}
        self._ended: list[Watched] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sigchld = False
        self._stop_requests = 0
        self._stop_handled = 0
        self._stop_signal: int | None = None
        self._drain_until: float | None = None
        self._warmed: set[str] = set()
        self._listener = WakeSource()
        self._listen_again: float | None = None
        self.claimed_count = 0
        #: Forked children whose pid is not in their row yet: {id: (attempt, pid)}.
        self._pids: dict[int, tuple[int, int]] = {}
        self._pids_due: float | None = None
        self._last_full = False  # the last claim took all it asked for
        #: Free slots a backlog waits for before the next claim.
        self._batch = max(1, options.max_running // 2)
        self.executor = executor or self._make_executor(app_import_path)

    def _make_executor(self, app_import_path: str | None) -> Executor:
        child_verbosity = max(0, self.options.verbosity - 1)
        if self.options.executor == "subprocess":
            return SubprocessExecutor(app_import_path, verbosity=child_verbosity)
        return ForkExecutor(self.app, verbosity=child_verbosity, after_fork=[self._in_child])

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Claim and supervise until the lifetime ends or a stop is asked; 0 when clean."""
        opts = self.options
        if self.executor.name == "fork":
            self._warm_store()
        # Children then share the warm manager's objects without the GC writing to them.
        gc.freeze()
        started = time.monotonic()
        end = None if opts.forever else started + opts.loop * opts.sleep
        logger.info(
            "manager %s on %s: max %s, executor %s, %s",
            os.getpid(),
            self.hostname,
            opts.max_running,
            self.executor.name,
            "until stopped" if end is None else f"for {end - started:g} s",
            extra={"action": "manager_start", "tache_id": None},
        )
        with self._signals():
            try:
                self._loop(end)
            finally:
                self._listener.close()
                self._listener = WakeSource()
        logger.info(
            "manager %s done: %s task(s) claimed in %.1f s; CPU %.2f s here, %.2f s in tasks",
            os.getpid(),
            self.claimed_count,
            time.monotonic() - started,
            *_cpu_seconds(),
            extra={"action": "manager_stop", "tache_id": None},
        )
        return 0

    def _listen(self) -> None:
        """(Re)build the store's listener; without one, the poll timer still works."""
        self._listener.close()
        self._listener = WakeSource()
        try:
            self._listener = self.store.wake_source(
                queues=self.options.queues or None, max_running=self.options.max_running
            )
        except Exception as exc:  # any driver error: polling still finds the work
            logger.error(
                "cannot listen for new tasks (polling every %g s): %s",
                self.options.poll,
                exc,
                extra={"action": "listen_error", "tache_id": None},
            )
            self._listen_again = time.monotonic() + RELISTEN_DELAY

    def _wait_for_work(self, timeout: float) -> bool:
        if self._listen_again is not None and time.monotonic() >= self._listen_again:
            self._listen_again = None
            self._listen()
        try:
            return self._listener.wait(timeout, self._wake_r.fileno())
        except Exception as exc:  # the listening connection broke: listen again later
            logger.error(
                "listening for new tasks failed: %s",
                exc,
                extra={"action": "listen_error", "tache_id": None},
            )
            self._listener.close()
            self._listener = WakeSource()
            self._listen_again = time.monotonic() + RELISTEN_DELAY
            return False

    def _loop(self, end: float | None) -> None:
        opts = self.options
        self._listen()
        next_check = 0.0
        next_poll = 0.0
        more = True  # the last claim was full: more may be waiting
        while True:
            reaped = self._reap()
            now = time.monotonic()
            self._enforce(now)
            if self._pids_due is not None and now >= self._pids_due:
                self._flush_pids(now)
            if now >= next_check:
                self._supervise()
                self._rescue()
                next_check = time.monotonic() + opts.check_every
            claiming = self._claiming(now, end)
            if not claiming and not self.children and not self._ended:
                return
            free = opts.max_running - len(self.children)
            # A backlog is claimed by half the slots at a time: each claim round
            # and fork costs the manager page copies (its children share its
            # memory), so fewer, larger rounds cost less per task.
            gathering = self._last_full and free < self._batch and bool(self.children)
            claimable = claiming and free > 0 and not gathering
            if claimable and (more or reaped or now >= next_poll):
                got = self._claim(free)
                next_poll = time.monotonic() + (opts.poll if got >= 0 else DB_ERROR_BACKOFF)
                more = got == free
                if got > 0:
                    continue
            wait = self._wait_for(now, end if claiming else None, next_check)
            if claimable:
                wait = min(wait, max(0.0, next_poll - now))
                more = self._wait_for_work(wait)
            else:
                self._sleep(wait)
            self._drain_wake()

    def _claiming(self, now: float, end: float | None) -> bool:
        if self._stop_requests > self._stop_handled:
            # The first request drains; a second one cuts the grace short.
            grace = self.options.drain_grace if not self._stop_handled else 0.0
            self._stop_handled = self._stop_requests
            self._drain_until = min(self._drain_until or float("inf"), now + grace)
            self._announce_stop()
        if self._stop_handled:
            return False
        return end is None or now < end

    def _wait_for(self, now: float, end: float | None, next_check: float) -> float:
        """Seconds until the next thing the loop must do by itself."""
        due = [next_check]
        if self._pids_due is not None:
            due.append(self._pids_due)
        if end is not None:
            due.append(end)
        if self._drain_until is not None and self.children:
            due.append(self._drain_until)
        for watched in self.children.values():
            if watched.kill_after is not None:
                due.append(watched.kill_after)
            elif watched.deadline is not None:
                due.append(watched.deadline.at)
        wait = min(due) - now
        if self.children and not self._sigchld:
            wait = min(wait, CHILD_POLL)
        if self._ended:
            wait = min(wait, DB_ERROR_BACKOFF)
        return max(MIN_WAIT, wait)

    def _sleep(self, timeout: float) -> None:
        select.select([self._wake_r], [], [], timeout)

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_r.recv(4096):
                pass

    # -- claiming and starting -------------------------------------------------------------

    def _claim(self, free: int) -> int:
        """Claim up to ``free`` tasks and start them; the number claimed, -1 on error."""
        opts = self.options
        pids = dict(self._pids)
        try:
            claimed = self.store.claim_batch(
                free,
                max_running=opts.max_running,
                queues=opts.queues or None,
                hostname=self.hostname,
                started=pids or None,
                expect_work=self._last_full,
            )
        except (SQLAlchemyError, TimeoutError) as exc:
            logger.error("claim failed: %s", exc, extra={"action": "claim_error", "tache_id": None})
            self._last_full = False
            return -1
        self._pids_written(pids)
        self._last_full = len(claimed) == free
        for task in claimed:
            self.claimed_count += 1
            logger.info(
                "claimed task %s (attempt %s): %s",
                task.id,
                task.attempt,
                task.method,
                extra={"action": "claim", "tache_id": task.id},
            )
            self._start(task)
        return len(claimed)

    def _pids_written(self, written: Mapping[int, tuple[int, int]]) -> None:
        for tache_id in written:
            self._pids.pop(tache_id, None)
        if not self._pids:
            self._pids_due = None

    def _flush_pids(self, now: float) -> None:
        """Write the pids no claim took along (the manager is idle, or its slots are full).

        A forked child does not open a connection to say it runs: its manager
        knows the pid. Until it lands the row has no pid, and the manager beats
        for it (``beat_unstarted``); a failure costs a rescue's pid check only.
        """
        pids = dict(self._pids)
        try:
            self.store.record_pids(pids, self.hostname)
        except SQLAlchemyError as exc:
            logger.error(
                "cannot record the pids of started tasks: %s",
                exc,
                extra={"action": "start_error", "tache_id": None},
            )
            self._pids_due = now + DB_ERROR_BACKOFF
            return
        self._pids_written(pids)

    def _start(self, task: Claimed) -> None:
        self._warm(task.method)
        try:
            child = self.executor.start(task)
        except OSError as exc:
            message = f"the manager could not start the task's process: {exc}"
            logger.error(message, extra={"action": "start_error", "tache_id": task.id})
            self._record_end(task, Status.INTERRUPTED, message)
            return
        watched = Watched(child)
        if self.executor.name == "fork":
            self._arm_timeout(watched, child.started)  # a fork starts the task at once
            self._pids[task.id] = (task.attempt, child.pid)
            if self._pids_due is None:
                self._pids_due = child.started + PID_DELAY
        self.children[child.pid] = watched
        logger.info(
            "started task %s in process %s (%s)",
            task.id,
            child.pid,
            self.executor.name,
            extra={"action": "start", "tache_id": task.id},
        )

    def _arm_timeout(self, watched: Watched, since: float) -> None:
        """The backstop of a task's timeout, counted from when its process started it.

        The runner stops a task at its timeout and gives up after KILL_GRACE;
        the manager steps in only if that process is itself stuck.
        """
        watched.armed = True
        timeout = watched.claimed.timeout
        if timeout:
            watched.stop_at(
                since + timeout + self.options.kill_grace + BACKSTOP_MARGIN,
                Status.FAILED,
                f"timeout after {timeout:g} s: the task's process did not stop "
                "itself; stopped by the manager",
                record_first=True,
            )

    def _warm_store(self) -> None:
        try:
            self.store.warm_up()
        except SQLAlchemyError as exc:  # a cold cache only costs time
            logger.warning(
                "could not warm the store up: %s", exc, extra={"action": "warm", "tache_id": None}
            )

    def _warm(self, method: str) -> None:
        """Import a task's module here once, so forked children find it loaded."""
        if self.executor.name != "fork":
            return
        try:
            module = check_allowed(method, self.allowed_modules).module
        except TacheError:
            return  # refused: the runner records why, in the task's own process
        if module in self._warmed or module in sys.modules:
            return
        self._warmed.add(module)
        try:
            importlib.import_module(module)
        except Exception as exc:  # the task's process reports it with its traceback
            logger.debug(
                "could not preload %s: %s", module, exc, extra={"action": "warm", "tache_id": None}
            )
            return
        gc.freeze()

    # -- watching the children -----------------------------------------------------------

    def _reap(self) -> int:
        """Collect the children that exited, then settle their rows; how many exited."""
        exited = [w for w in self.children.values() if w.child.poll() is not None]
        for watched in exited:
            del self.children[watched.child.pid]
            self._pids.pop(watched.claimed.id, None)  # its row has ended or will, pid or not
        self._ended.extend(exited)
        if self._ended:
            self._settle()
        return len(exited)

    def _settle(self) -> None:
        """For each exited child: its end as recorded, or INTERRUPTED/its verdict if none."""
        known = [w for w in self._ended if w.child.end_known]
        if known:
            self._ended = [w for w in self._ended if not w.child.end_known]
            for watched in known:  # the child said so: no need to read the row
                ended_as = watched.child.ended_as
                self._log_end(watched, ended_as.value if ended_as else "not this attempt's")
            if not self._ended:
                return
        try:
            states = self.store.attempt_states([w.claimed.id for w in self._ended])
        except SQLAlchemyError as exc:
            logger.error(
                "cannot read the rows of ended tasks (will retry): %s",
                exc,
                extra={"action": "settle_error", "tache_id": None},
            )
            return
        pending, self._ended = self._ended, []
        for watched in pending:
            task, child = watched.claimed, watched.child
            assert child.returncode is not None
            state = states.get(task.id)
            how = describe_exit(child.returncode)
            if (
                state is not None
                and state.status is Status.RUNNING
                and state.attempts == task.attempt
            ):
                status, message = watched.verdict or (
                    Status.INTERRUPTED,
                    f"process {child.pid} {how} without recording an end",
                )
                try:
                    final = self._record_end(task, status, message)
                except SQLAlchemyError:
                    self._ended.append(watched)  # try again at the next pass
                    continue
                shown = final.value if final is not None else "ended elsewhere"
                logger.warning(
                    "task %s: %s -> %s",
                    task.id,
                    message,
                    shown,
                    extra={"action": "end", "tache_id": task.id},
                )
                continue
            if state is None:
                shown = "deleted"
            elif state.attempts != task.attempt:
                shown = f"superseded by attempt {state.attempts}"
            else:
                shown = state.status.value
            self._log_end(watched, shown)

    def _log_end(self, watched: Watched, shown: str) -> None:
        child = watched.child
        assert child.returncode is not None
        logger.info(
            "ended task %s: %s in %.2f s (process %s %s)",
            watched.claimed.id,
            shown,
            time.monotonic() - child.started,
            child.pid,
            describe_exit(child.returncode),
            extra={"action": "end", "tache_id": watched.claimed.id},
        )

    def _record_end(self, task: Claimed, status: Status, message: str) -> Status | None:
        return self.store.end_on_behalf(task.id, task.attempt, status, message)

    def _enforce(self, now: float) -> None:
        """Stops decided by time: SIGTERM when a deadline comes, SIGKILL a grace later."""
        opts = self.options
        if self._drain_until is not None and now >= self._drain_until:
            message = (
                "stopped by the manager: it was asked to stop and the task outlived "
                f"the drain grace of {opts.drain_grace:g} s"
            )
            for watched in self.children.values():
                watched.stop_at(now, Status.INTERRUPTED, message)
        for watched in self.children.values():
            deadline = watched.deadline
            if deadline is None or now < deadline.at:
                continue
            if watched.kill_after is None:
                if deadline.status is not None:
                    watched.verdict = (deadline.status, deadline.message)
                    if deadline.record_first:
                        self._record_verdict(watched, deadline.status, deadline.message)
                watched.kill_after = now + opts.kill_grace
                self._send(watched, signal.SIGTERM, "SIGTERM", deadline.message)
            elif now >= watched.kill_after:
                self._send(watched, _SIGKILL, "SIGKILL", f"still there {opts.kill_grace:g} s later")

    def _record_verdict(self, watched: Watched, status: Status, message: str) -> None:
        """End the attempt now (fenced); on a database error the reap records it later."""
        task = watched.claimed
        try:
            final = self._record_end(task, status, message)
        except SQLAlchemyError as exc:
            logger.error(
                "task %s: cannot record its end yet: %s",
                task.id,
                exc,
                extra={"action": "end_error", "tache_id": task.id},
            )
            return
        if final is not None:
            logger.warning(
                "task %s: %s -> %s",
                task.id,
                message,
                final.value,
                extra={"action": "end", "tache_id": task.id},
            )

    def _send(self, watched: Watched, signum: int, name: str, why: str) -> None:
        if name in watched.signals:
            return
        watched.signals.append(name)
        logger.warning(
            "sending %s to task %s (process %s): %s",
            name,
            watched.claimed.id,
            watched.child.pid,
            why,
            extra={"action": "signal", "tache_id": watched.claimed.id},
        )
        watched.child.signal(signum)

    def _supervise(self) -> None:
        """Compare each child with its row: ended elsewhere, superseded, cancel ignored."""
        if not self.children:
            return
        opts = self.options
        by_id = {w.claimed.id: w for w in self.children.values()}
        try:
            states = self.store.attempt_states(list(by_id))
        except SQLAlchemyError as exc:
            logger.error(
                "supervision read failed: %s",
                exc,
                extra={"action": "supervise_error", "tache_id": None},
            )
            return
        now, wall = time.monotonic(), utcnow()
        patience = opts.heartbeat + opts.kill_grace + BACKSTOP_MARGIN
        unstarted: dict[int, int] = {}
        for tache_id, watched in by_id.items():
            state = states.get(tache_id)
            ours = (
                state is not None
                and state.status is Status.RUNNING
                and state.attempts == watched.claimed.attempt
            )
            if not ours:
                self._release(watched, now)
                continue
            assert state is not None
            if state.pid is None:
                unstarted[tache_id] = watched.claimed.attempt
            elif not watched.armed:
                self._arm_timeout(watched, now)
            asked = state.cancel_requested_at
            if asked is not None and (wall - asked).total_seconds() >= patience:
                who = state.cancel_requested_by or "someone"
                watched.stop_at(
                    now,
                    Status.CANCELLED,
                    f"cancelled by {who} at {asked.isoformat(timespec='seconds')}; the task's "
                    "process did not stop itself: stopped by the manager",
                    record_first=True,
                )

        try:
            self.store.beat_for_unstarted(unstarted)
        except SQLAlchemyError as exc:
            logger.error(
                "beat for starting tasks failed: %s",
                exc,
                extra={"action": "supervise_error", "tache_id": None},
            )

    def _release(self, watched: Watched, now: float) -> None:
        """The row is no longer this attempt's: its process must leave, and soon.

        Either its end is recorded (it is exiting; an interpreter may take a
        moment) or it was declared dead and replaced (its runner notices at the
        next beat and stops itself). Past that, it is killed.
        """
        if watched.released_at is not None:
            return
        watched.released_at = now
        opts = self.options
        patience = max(opts.heartbeat_timeout, opts.heartbeat + opts.kill_grace)
        watched.stop_at(
            now + patience + BACKSTOP_MARGIN,
            None,
            f"the row is no longer this attempt's and the process has not left "
            f"in {patience + BACKSTOP_MARGIN:g} s",
        )

    def _rescue(self) -> None:
        mine = set(self.children)
        try:
            rescued = self.store.rescue(
                heartbeat_timeout=self.options.heartbeat_timeout,
                hostname=self.hostname,
                is_alive=lambda pid: pid in mine or pid_alive(pid),
            )
        except SQLAlchemyError as exc:
            logger.error(
                "rescue failed: %s", exc, extra={"action": "rescue_error", "tache_id": None}
            )
            return
        for found in rescued:
            logger.warning(
                "rescued task %s attempt %s: %s -> %s",
                found.id,
                found.attempt,
                found.reason,
                found.status.value,
                extra={"action": "rescue", "tache_id": found.id},
            )
        self._stop_overdue_orphans(mine)

    def _stop_overdue_orphans(self, mine: set[int]) -> None:
        """Kill this host's tasks left by a dead manager and stuck past their timeout.

        A silent task whose process lives here is not rescued on its silence
        (see :meth:`Store.rescue`); its timeout is enforced by its own watchdog,
        else by its manager, and, when that manager is gone, here. A pid that
        started far from the claim is somebody else's now: it is left alone.
        """
        try:
            overdue = self.store.overdue_here(self.hostname, self.options.kill_grace + 1.0)
        except SQLAlchemyError as exc:
            logger.error("overdue check failed: %s", exc, extra={"action": "rescue_error"})
            return
        for task in overdue:
            if task.pid in mine or not pid_alive(task.pid):
                continue  # our own child has its backstop; a dead one is rescued above
            if started_near(task.pid, task.started_at) is False:
                continue
            _kill_process_group(task.pid)
            message = (
                f"timeout after {task.timeout:g} s: process {task.pid} did not stop and "
                f"was killed by a manager on {self.hostname}"
            )
            final = self.store.end_on_behalf(task.id, task.attempt, Status.FAILED, message)
            logger.warning(
                "task %s attempt %s: %s -> %s",
                task.id,
                task.attempt,
                message,
                final.value if final else "already ended",
                extra={"action": "overdue_killed", "tache_id": task.id},
            )

    # -- signals -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Stop on SIGTERM/SIGINT; wake on SIGCHLD. Only the main thread can have handlers."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_stop)
        sigchld = getattr(signal, "SIGCHLD", None)
        if sigchld is not None:
            previous[sigchld] = signal.signal(sigchld, self._on_child)
            self._sigchld = True
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_fd)
            for number, handler in previous.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)
            self._sigchld = False

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        # Only flags here: the loop logs and acts (a handler may run mid-statement).
        self._stop_requests += 1
        self._stop_signal = signum

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        """Nothing to do: the write to the wake-up socket already woke the loop."""

    def _announce_stop(self) -> None:
        name = signal.Signals(self._stop_signal).name if self._stop_signal else "a request"
        grace = max(0.0, (self._drain_until or 0.0) - time.monotonic())
        logger.info(
            "%s received: no more claims; %s running task(s) get %.1f s to finish",
            name,
            len(self.children),
            grace,
            extra={"action": "stopping", "tache_id": None},
        )

    def request_stop(self) -> None:
        """Stop as SIGTERM would (for callers running the manager in a thread)."""
        self._stop_requests += 1
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _in_child(self) -> None:
        """First thing in a forked child: nothing of the manager's signal plumbing."""
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGCHLD", None)):
                if signum is not None:
                    signal.signal(signum, signal.SIG_DFL)
        self._wake_r.close()
        self._wake_w.close()

    def close(self) -> None:
        """Release the wake-up socket (after :meth:`run`)."""
        self._wake_r.close()
        self._wake_w.close()


_SIGKILL = int(getattr(signal, "SIGKILL", signal.SIGTERM))
