"""Run one task in this process: resolve, inject, call, record.

:func:`run_one` is ``flask taches run ID``: it checks the method, claims the
row and runs it. :func:`run_claimed` runs a row that is already RUNNING for a
given attempt (claimed by a manager, or by :func:`run_one`); the manager's fork
executor calls it in the child, its subprocess executor through
``flask taches run ID --attempt N``.

The task runs in the calling thread. Beside it, a *watchdog* thread

* writes pending logs and progress (:meth:`Store.save_live`) at most every
  ``TACHES_FLUSH_INTERVAL`` seconds, so pages show them while the task runs;
* beats every ``TACHES_HEARTBEAT`` seconds, which also tells it whether a user
  asked to cancel the task and whether this attempt still owns the row (a
  manager that declared it dead has moved on: it is *fenced out*);
* enforces the task's ``timeout``.

To stop the task (cancel, timeout, fenced out) the watchdog sends
:data:`INTERRUPT_SIGNAL` to the main thread, whose handler raises
:class:`TacheStopped`. If the task has not come back ``TACHES_KILL_GRACE``
seconds later (stuck in C code, or swallowing the exception), the watchdog
records the end itself and leaves with ``os._exit``. SIGTERM and SIGINT from
outside end the attempt INTERRUPTED. Signal handlers exist only in the main
thread: called from another thread, the runner cannot interrupt the task, but
still records the right end once the task returns.

Every write is fenced by the attempt, so a late process changes nothing; the
task's ``tache`` is a detached copy of the row, never attached to
``db.session``, so a task committing its own session cannot overwrite it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from flask import Flask, current_app
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from .console import Console
from .exceptions import TacheError, no_such_task
from .injection import Injector, bind
from .lifecycle import log_entry
from .methods import check_allowed, locate
from .models import Tache, utcnow
from .state import app_state
from .status import Status
from .store import Store

#: Sent by the watchdog to the task's main thread to stop it (POSIX only).
INTERRUPT_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
#: Signals from outside that end the attempt INTERRUPTED.
EXTERNAL_SIGNALS = (signal.SIGTERM, signal.SIGINT)
ABANDONED_EXIT_CODE = 1  # os._exit status when a task ignored its stop for KILL_GRACE
FINISH_TRIES = 3  # attempts to record the end when the database hiccups
FINISH_RETRY_DELAY = 0.5  # seconds, times the try number, between those attempts
MIN_WAIT = 0.01  # seconds: the watchdog never loops faster than this
RESULT_REPR_LIMIT = 2000  # characters kept of a result that is not JSON

#: Frames of flask-taches itself are cut from the top of a task's traceback.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Parent of every task's ``logger`` (``flask_taches.tache.<id>``).
TASK_LOGGER = "flask_taches.tache"

logger = logging.getLogger(__name__)


class TacheStopped(BaseException):
    """Raised in the task's thread to stop it.

    A ``BaseException`` so that a task's ``except Exception`` lets it through.
    """


@dataclass(frozen=True)
class Stop:
    """Why a running task is being stopped."""

    #: The status to record; None when the attempt was fenced out (record nothing).
    status: Status | None
    message: str
    level: str = "error"


@dataclass
class Outcome:
    """How the call ended, before the watchdog's decisions are applied."""

    status: Status
    result: Any = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    #: The stop decided while the task was running (it wins over the outcome).
    stop: Stop | None = None
    #: False when another attempt would fail the same way (a refused or missing
    #: method, a parameter nothing provides): no retry is scheduled.
    retry: bool = True


# -- entry points ---------------------------------------------------------------------


def run_one(tache_id: int, *, force: bool = False, verbosity: int = 0) -> Status | None:
    """Claim task ``tache_id`` and run it here (``flask taches run ID``).

    Raises :class:`TacheNotFound`, :class:`MethodRefused` (the row is left
    untouched) or :class:`InvalidTransition` (not TO_RUN and not ``force``).
    Returns the status stored at the end (TO_RUN when a retry was scheduled),
    None if another process took the row over meanwhile.
    """
    state = app_state()
    store = state.store
    row = store.get_row(tache_id)
    if row is None:
        raise no_such_task(tache_id)
    check_allowed(row["method"], state.allowed_modules)
    attempt = store.claim_one(tache_id, force=force, hostname=socket.gethostname())
    return run_claimed(tache_id, attempt, verbosity=verbosity)


def run_claimed(
    tache_id: int,
    attempt: int,
    *,
    verbosity: int = 0,
    row: Mapping[str, Any] | None = None,
) -> Status | None:
    """Run a task already RUNNING with ``attempts == attempt``, in this process.

    Needs an app context. Returns the status stored at the end (TO_RUN when a
    retry was scheduled), None when the attempt is not (or no longer) the
    row's. Never leaves the row RUNNING when it returns normally.

    ``row`` is the row as a manager just claimed it, in the process it forked
    for the task: the manager records that process's pid, so nothing is read
    or written before the task runs (every later write is fenced as usual).
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    store = app_state(app).store
    if row is not None:
        return Attempt(app, store, row, attempt, _console(verbosity), mark=False).run()
    row = store.get_row(tache_id)  # no write lock: SQLite writers are busy beating
    if row is None or row["status"] != Status.RUNNING.value or row["attempts"] != attempt:
        logger.warning(
            "task %s attempt %s is not RUNNING here: nothing to run",
            tache_id,
            attempt,
            extra={"action": "fenced", "tache_id": tache_id},
        )
        return None
    return Attempt(app, store, row, attempt, _console(verbosity)).run()


def _console(verbosity: int) -> Console | None:
    return Console(verbosity) if verbosity > 0 else None


# -- shared state between the task's thread, the watchdog and the handlers --------------


class Control:
    """Who stops the task and who records its end, decided once, under one lock.

    The lock is re-entrant because signal handlers run in the main thread,
    possibly while that thread already holds it.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stop: Stop | None = None
        self.stop_at: float | None = None  # monotonic time the stop was decided
        self.in_task = False  # the main thread is inside the task's code
        self.interrupted = False  # TacheStopped was raised once already
        self.ended = False  # someone is recording the end
        self.left = False  # the main thread came back from the task
        self.left_with: Stop | None = None  # the stop decided by then
        self.main_ident: int | None = None  # set when the main thread can be interrupted

    def decide(self, stop: Stop) -> bool:
        """Record why the task stops, unless a reason exists already; True if new."""
        with self.lock:
            if self.ended or self.stop is not None:
                return False
            self.stop = stop
            self.stop_at = time.monotonic()
            return True

    def request_stop(self, stop: Stop) -> None:
        """From the watchdog: decide, then interrupt the task's main thread."""
        with self.lock:
            if not self.decide(stop):
                return
            if self.main_ident is not None and self.in_task and INTERRUPT_SIGNAL is not None:
                signal.pthread_kill(self.main_ident, INTERRUPT_SIGNAL)

    def take_interrupt(self) -> bool:
        """In a handler: raise TacheStopped now? Only inside the task, and only once."""
        with self.lock:
            if self.in_task and not self.interrupted and not self.ended:
                self.interrupted = True
                return True
            return False

    def enter_task(self) -> None:
        with self.lock:
            if self.stop is not None:
                self.interrupted = True
                raise TacheStopped()
            self.in_task = True

    def leave_task(self) -> Stop | None:
        """Back from the task: the stop decided while it ran (fixed at the first call)."""
        with self.lock:
            self.in_task = False
            if not self.left:
                self.left = True
                self.left_with = self.stop
            return self.left_with

    def claim_end(self) -> bool:
        """True for the first caller only: it records the end; nobody signals after."""
        with self.lock:
            if self.ended:
                return False
            self.ended = True
            self.in_task = False
            return True


# -- logs and progress ---------------------------------------------------------------------


class LiveRecorder:
    """Collects a running task's logs and progress for the watchdog to flush.

    Attached to the task's ``tache`` (see :class:`flask_taches.models.Recorder`);
    thread-safe, since a task may log from its own threads.
    """

    def __init__(
        self,
        logs: list[dict[str, Any]],
        progress: dict[str, Any] | None,
        console: Console | None,
        wake: Callable[[], None],
    ) -> None:
        self._lock = threading.Lock()
        self._logs = list(logs)
        self._progress = progress
        self._dirty = False
        self._console = console
        self._wake = wake

    @property
    def dirty(self) -> bool:
        return self._dirty

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._logs.append(entry)
            was_dirty, self._dirty = self._dirty, True
        if self._console is not None:
            self._console.log(entry)
        if not was_dirty:  # the watchdog already knows a flush is due
            self._wake()

    def on_log(self, tache: Tache, entry: dict[str, Any]) -> None:
        self.append(entry)

    def on_progress(self, tache: Tache, progress: dict[str, Any]) -> None:
        with self._lock:
            self._progress = progress
            was_dirty, self._dirty = self._dirty, True
        if self._console is not None:
            self._console.progress(progress)
        if not was_dirty:
            self._wake()

    def on_debug(self, tache: Tache, message: str, details: Any) -> None:
        if self._console is not None:
            self._console.debug(message, details)

    def take(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None] | None:
        """What changed since the last take (a copy), or None."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return list(self._logs), self._progress

    def mark_dirty(self) -> None:
        """A flush failed: keep the changes for the next one."""
        with self._lock:
            self._dirty = True

    def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        with self._lock:
            return list(self._logs), self._progress


class TacheLogHandler(logging.Handler):
    """Sends the task's ``logger`` records to its logs (INFO and up) or console (DEBUG)."""

    def __init__(self, tache: Tache) -> None:
        super().__init__(logging.DEBUG)
        self.tache = tache

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            details = None
            if record.exc_info:
                details = "".join(traceback.format_exception(*record.exc_info))
            if record.levelno >= logging.INFO:
                self.tache.log(_level_name(record.levelno), message, details)
            else:
                self.tache.debug(message, details)
        except Exception:
            self.handleError(record)


def _level_name(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info"


def task_logger(tache: Tache) -> logging.Logger:
    """A logger for one run, outside logging's registry (so it is not kept forever).

    Its records also propagate to ``flask_taches.tache`` for the application's handlers.
    """
    task_log = logging.Logger(f"{TASK_LOGGER}.{tache.id}", logging.DEBUG)
    task_log.parent = logging.getLogger(TASK_LOGGER)
    task_log.addHandler(TacheLogHandler(tache))
    return task_log


# -- one attempt -------------------------------------------------------------------------------


class Attempt:
    """One run of one claimed task, from ``mark_started`` to ``finish``."""

    def __init__(
        self,
        app: Flask,
        store: Store,
        row: Mapping[str, Any],
        attempt: int,
        console: Console | None,
        *,
        mark: bool = True,
    ) -> None:
        self.app = app
        #: Record pid and hostname first (False: the manager that forked us does).
        self.mark = mark
        self.store = store
        self.tache_id = int(row["id"])
        self.attempt = attempt
        self.console = console
        self.control = Control()
        config = app.config
        timeout = row["timeout"] if row["timeout"] is not None else config["TACHES_TIMEOUT"]
        self.watchdog = Watchdog(
            self,
            heartbeat=float(config["TACHES_HEARTBEAT"]),
            flush_interval=float(config["TACHES_FLUSH_INTERVAL"]),
            timeout=float(timeout) if timeout else None,
            kill_grace=float(config["TACHES_KILL_GRACE"]),
        )
        # Detached: a task committing db.session can never write this row.
        self.tache = Tache(**dict(row))
        self.recorder = LiveRecorder(
            list(row["logs"] or []), row["progress"], console, self.watchdog.wake.set
        )
        self.started = time.monotonic()

    def _log_extra(self, action: str) -> dict[str, Any]:
        return {"action": action, "tache_id": self.tache_id}

    def run(self) -> Status | None:
        if self.mark and not self.store.record_start(
            self.tache_id, self.attempt, os.getpid(), socket.gethostname()
        ):
            logger.warning(
                "task %s attempt %s was taken over before it started",
                self.tache_id,
                self.attempt,
                extra=self._log_extra("fenced"),
            )
            return None
        self.started = time.monotonic()
        logger.info(
            "task %s attempt %s started: %s",
            self.tache_id,
            self.attempt,
            self.tache.method,
            extra=self._log_extra("started"),
        )
        if self.console is not None:
            self.console.started(
                self.tache_id, self.tache.method, self.attempt, self.tache.parametres or {}
            )
        self.tache.attach_recorder(self.recorder)
        previous = self._install_signals()
        self.watchdog.start()
        try:
            return self._conclude(self._execute())
        finally:
            self.watchdog.stop()
            self._restore_signals(previous)
            self.tache.attach_recorder(None)
            self._release_session()

    # -- calling the task -----------------------------------------------------------

    def _execute(self) -> Outcome:
        control = self.control
        try:
            try:
                control.enter_task()
                value = self._resolve()()
            finally:
                control.leave_task()
        except TacheStopped:
            outcome = Outcome(Status.INTERRUPTED)
        except KeyboardInterrupt:
            stop = Stop(Status.INTERRUPTED, "interrupted by KeyboardInterrupt", "warning")
            outcome = Outcome(Status.INTERRUPTED, stop=stop)
        except _Unresolvable as exc:
            entries = [log_entry("error", f"{exc.__cause__}; not retried", utcnow())]
            outcome = Outcome(Status.FAILED, entries=entries, retry=False)
        except BaseException as exc:
            outcome = Outcome(Status.FAILED, entries=[_exception_entry(exc)])
        else:
            outcome = _judge(value)
        # A stop decided (by the watchdog or a signal) while the task ran wins.
        outcome.stop = control.leave_task() or outcome.stop
        if outcome.stop is None and outcome.status is Status.INTERRUPTED:
            outcome.entries.append(
                log_entry("warning", "the task raised TacheStopped itself", utcnow())
            )
        return outcome

    def _resolve(self) -> Callable[[], Any]:
        """Find the callable and its arguments; our own refusals are not the task's bug."""
        state = app_state(self.app)
        try:
            # The allowlist confines the walk too: "app.jobs:os.system" is refused.
            target = locate(self.tache.method, state.allowed_modules)
        except TacheError as exc:
            raise _Unresolvable() from exc
        builtins = {
            "tache": self.tache,
            "app": self.app,
            "db": state.db,
            "logger": task_logger(self.tache),
        }
        injector = Injector(
            builtins,
            state.hooks.services,
            self.tache.parametres or {},
            self.tache.parametres_caches or {},
        )
        try:
            return bind(target, injector)
        except TacheError as exc:  # MissingArgument, naming the parameter
            raise _Unresolvable() from exc

    # -- recording the end ----------------------------------------------------------

    def _conclude(self, outcome: Outcome) -> Status | None:
        if not self.control.claim_end():
            # The watchdog gave up waiting for us: it records the end and exits.
            self.watchdog.join()
            return None
        stop = outcome.stop
        if stop is not None and stop.status is None:
            logger.warning(
                "task %s attempt %s: %s",
                self.tache_id,
                self.attempt,
                stop.message,
                extra=self._log_extra("fenced"),
            )
            if self.console is not None:
                self.console.close()
            return None
        status, result, entries = outcome.status, outcome.result, list(outcome.entries)
        if stop is not None:
            assert stop.status is not None
            status, result = stop.status, None
            entries.append(log_entry(stop.level, stop.message, utcnow()))
        final = self._record(status, result, entries, retry=outcome.retry or stop is not None)
        elapsed = time.monotonic() - self.started
        logger.info(
            "task %s attempt %s ended %s in %.2f s (stored %s)",
            self.tache_id,
            self.attempt,
            status.value,
            elapsed,
            final.value if final is not None else "nothing: fenced out",
            extra=self._log_extra("ended"),
        )
        if self.console is not None:
            shown = final.value if final is not None else f"{status.value} (not recorded)"
            self.console.ended(self.tache_id, shown, elapsed, result)
        return final

    def _record(
        self, status: Status, result: Any, entries: list[dict[str, Any]], retry: bool = True
    ) -> Status | None:
        for entry in entries:
            self.recorder.append(entry)
        logs, progress = self.recorder.snapshot()
        for tried in range(1, FINISH_TRIES + 1):
            try:
                return self.store.record_end(
                    self.tache_id,
                    self.attempt,
                    status,
                    result=result,
                    logs=logs,
                    progress=progress,
                    retry=retry,
                )
            except OperationalError as exc:
                if tried == FINISH_TRIES:
                    raise
                logger.warning(
                    "task %s: recording its end failed (%s); trying again",
                    self.tache_id,
                    exc.orig,
                    extra=self._log_extra("finish_retry"),
                )
                time.sleep(FINISH_RETRY_DELAY * tried)
        raise AssertionError("unreachable")  # the loop returns or raises

    def abandon(self, grace: float) -> None:
        """From the watchdog: the task ignored its stop; record the end and exit."""
        if not self.control.claim_end():
            return
        stop = self.control.stop
        assert stop is not None
        note = f"the task did not stop within {grace:g} s of being asked; its process exits"
        logger.error("task %s: %s", self.tache_id, note, extra=self._log_extra("abandoned"))
        try:
            if stop.status is not None:
                entries = [
                    log_entry(stop.level, stop.message, utcnow()),
                    log_entry("error", note, utcnow()),
                ]
                self._record(stop.status, None, entries)
            if self.console is not None:
                self.console.close()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            # Whatever failed above (the database down, a closed pipe), the process
            # must go: a live, beating process would keep the row RUNNING for ever.
            # Its row, if unrecorded, is then rescued as any dead task's.
            os._exit(ABANDONED_EXIT_CODE)

    # -- signals and session --------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        """Handlers for the watchdog's interrupt, SIGTERM and SIGINT (main thread only)."""
        if INTERRUPT_SIGNAL is None or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        try:
            previous[INTERRUPT_SIGNAL] = signal.signal(INTERRUPT_SIGNAL, self._on_interrupt)
            for signum in EXTERNAL_SIGNALS:
                previous[signum] = signal.signal(signum, self._on_external)
        except ValueError:  # not the main interpreter: no handlers at all
            self._restore_signals(previous)
            return {}
        self.control.main_ident = threading.main_thread().ident
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.control.take_interrupt():
            raise TacheStopped()

    def _on_external(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.control.decide(Stop(Status.INTERRUPTED, f"interrupted by {name}", "warning"))
        if self.control.take_interrupt():
            raise TacheStopped()

    def _release_session(self) -> None:
        """Whatever the task left in ``db.session`` is rolled back and dropped."""
        app_state(self.app).db.session.remove()


class _Unresolvable(Exception):
    """The method or an argument could not be found; the cause says which."""


def _exception_entry(exc: BaseException) -> dict[str, Any]:
    """The exception as a log entry; ``details`` is its traceback, from the task's code on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    return log_entry("error", f"{type(exc).__name__}: {exc}", utcnow(), text)


def _judge(value: Any) -> Outcome:
    """The contract: False fails; None, True or a JSON value completes (kept in result)."""
    if value is False:
        return Outcome(
            Status.FAILED, entries=[log_entry("error", "the task returned False", utcnow())]
        )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        text = repr(value)[:RESULT_REPR_LIMIT]
        note = f"the result is not JSON ({exc}); its repr() was kept instead"
        return Outcome(
            Status.COMPLETED, result=text, entries=[log_entry("warning", note, utcnow())]
        )
    return Outcome(Status.COMPLETED, result=value)


# -- the watchdog -----------------------------------------------------------------------------


class Watchdog(threading.Thread):
    """Flushes, beats, watches cancel/timeout/fencing, and stops the task when told."""

    def __init__(
        self,
        attempt: Attempt,
        *,
        heartbeat: float,
        flush_interval: float,
        timeout: float | None,
        kill_grace: float,
    ) -> None:
        super().__init__(name=f"taches-watchdog-{attempt.tache_id}", daemon=True)
        self.run_ = attempt
        self.heartbeat = heartbeat
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.wake = threading.Event()
        self._done = threading.Event()
        self._last_flush = float("-inf")
        self._next_beat = 0.0
        self._deadline: float | None = None

    def stop(self) -> None:
        """Called by the task's thread once the end is recorded."""
        self._done.set()
        self.wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()

    def run(self) -> None:
        started = self.run_.started
        self._next_beat = started + self.heartbeat
        self._deadline = started + self.timeout if self.timeout else None
        while not self._done.is_set():
            self.wake.wait(self._wait())
            self.wake.clear()
            if self._done.is_set():
                return
            try:
                self._tick(time.monotonic())
            except SQLAlchemyError as exc:
                # A missed beat is not fatal: the next tick tries again.
                logger.warning(
                    "task %s watchdog: database error: %s",
                    self.run_.tache_id,
                    exc,
                    extra={"action": "watchdog_error", "tache_id": self.run_.tache_id},
                )

    def _wait(self) -> float:
        now = time.monotonic()
        due = [self._next_beat]
        if self._deadline is not None:
            due.append(self._deadline)
        if self.run_.recorder.dirty:
            due.append(self._last_flush + self.flush_interval)
        stop_at = self.run_.control.stop_at
        if stop_at is not None and self.run_.control.main_ident is not None:
            due.append(stop_at + self.kill_grace)
        return max(MIN_WAIT, min(due) - now)

    def _tick(self, now: float) -> None:
        run, control = self.run_, self.run_.control
        fenced = control.stop is not None and control.stop.status is None
        if not fenced and run.recorder.dirty and now - self._last_flush >= self.flush_interval:
            self._flush(now)
        if not fenced and now >= self._next_beat:
            self._next_beat = now + self.heartbeat
            self._beat()
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            assert self.timeout is not None
            control.request_stop(Stop(Status.FAILED, f"timeout after {self.timeout:g} s"))
        stop_at = control.stop_at
        if (
            stop_at is not None
            and control.main_ident is not None
            and now - stop_at >= self.kill_grace
        ):
            run.abandon(self.kill_grace)

    def _flush(self, now: float) -> None:
        run = self.run_
        pending = run.recorder.take()
        self._last_flush = now
        if pending is None:
            return
        logs, progress = pending
        try:
            ours = run.store.record_live(run.tache_id, run.attempt, logs=logs, progress=progress)
        except SQLAlchemyError:
            run.recorder.mark_dirty()
            raise
        if not ours:
            run.control.request_stop(_fenced(run.attempt))

    def _beat(self) -> None:
        run = self.run_
        beat = run.store.beat(run.tache_id, run.attempt)
        asker = beat.cancel_asked_by
        if not beat.owned:
            run.control.request_stop(_fenced(run.attempt))
        elif asker is not None:
            now = utcnow().isoformat(timespec="seconds")
            run.control.request_stop(
                Stop(Status.CANCELLED, f"cancelled by {asker} at {now}", "warning")
            )


def _fenced(attempt: int) -> Stop:
    return Stop(None, f"attempt {attempt} no longer owns the row (declared dead elsewhere)")
