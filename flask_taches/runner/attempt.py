"""One attempt of one claimed task, from its recorded start to its recorded end.

The task runs in the calling thread, with the attempt's signal handlers
installed when that is the main thread, and a :class:`Watchdog` beside it.
The task's ``tache`` is a detached copy of the row, never attached to
``db.session``, so a task committing its own session cannot overwrite it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from ..console import Console
from ..decorators import TaskOptions, options_of
from ..exceptions import TacheError
from ..injection import Injector, bind
from ..models import Tache
from ..processes import handling
from ..proctitle import task_title, titled
from ..signals import send, tache_started
from ..state import app_state
from ..status import Status
from ..store import Store
from .ending import Ending
from .fresh_lookup import locate_fresh
from .hiding import Mask
from .hooks import after_end
from .live import LiveRecorder, task_logger
from .outcome import Outcome, Unresolvable, call_task
from .stopping import StopState, signal_handlers
from .watchdog import Timings, Watchdog, WatchedAttempt

logger = logging.getLogger("flask_taches.runner")


@dataclass(frozen=True)
class Ran:
    """How one attempt run by :meth:`Attempt.run_reporting` ended, for its process."""

    #: The status stored at the end, as :meth:`Attempt.run` returns it.
    status: Status | None
    #: Something stopped the task (its timeout, a cancel, a signal, fencing): a
    #: process that runs tasks one after another must not take another.
    stopped: bool = False


class Attempt:
    """One run of one claimed task: start, call, end."""

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
        self.stops = StopState()
        logs = list(row["logs"] or [])
        # Detached: a task committing db.session can never write this row. Its
        # logs are a list of its own, since the tache appends to them in place.
        self.tache = Tache(**{**row, "logs": logs})
        wake = threading.Event()  # set when there is something to flush
        mask = Mask(row["parametres_caches"])
        config = app_state(app).config
        self.recorder = LiveRecorder(
            logs, row["progress"], console, wake.set, mask, max_logs=config["TACHES_MAX_LOGS"]
        )
        watched = WatchedAttempt(
            self.tache_id, attempt, store, self.recorder, self.stops, self._give_up
        )
        timings = Timings.of(config, row["timeout"])
        self.watchdog = Watchdog(watched, timings, wake)
        self.ending = Ending(
            store,
            self.tache_id,
            attempt,
            self.recorder,
            console,
            max_result_size=config["TACHES_MAX_RESULT_SIZE"],
        )
        self.started = time.monotonic()
        #: ``@taches.task``'s options of the task's function, once resolved.
        self.options: TaskOptions | None = None

    def run_reporting(self) -> Ran:
        """:meth:`run`, and whether a stop was decided for the task."""
        status = self.run()
        return Ran(status, stopped=self.stops.stop is not None)

    def run(self) -> Status | None:
        if self.mark and not self.store.record_start(
            self.tache_id, self.attempt, os.getpid(), socket.gethostname()
        ):
            logger.warning(
                "task %s attempt %s was taken over before it started",
                self.tache_id,
                self.attempt,
                extra=self._extra("fenced"),
            )
            return None
        self._announce()
        self.tache.attach_recorder(self.recorder)
        send(tache_started, self.app, tache=self.tache, attempt=self.attempt)
        handlers = signal_handlers(self.stops)
        title = titled(task_title(self.tache_id, self.tache.method))  # for ps and top
        try:
            with title, handling(handlers) as installed:
                if installed and handlers:
                    self.stops.interruptible_in(threading.main_thread().ident)
                self.watchdog.start_at(self.started)
                try:
                    final = self._end(call_task(self.stops, self._resolve, self._retries))
                finally:
                    self.watchdog.stop()
        finally:
            self.tache.attach_recorder(None)
            # Whatever the task left in db.session is rolled back and dropped.
            app_state(self.app).db.session.remove()
        try:
            # Outside the attempt: its end is recorded, its watchdog and handlers gone.
            after_end(self.app, self.store, self.tache, self.attempt, final)
        finally:
            app_state(self.app).db.session.remove()
        return final

    def _announce(self) -> None:
        self.started = time.monotonic()
        logger.info(
            "task %s attempt %s started: %s",
            self.tache_id,
            self.attempt,
            self.tache.method,
            extra=self._extra("started"),
        )
        if self.console is not None:
            self.console.started(
                self.tache_id, self.tache.method, self.attempt, self.tache.parametres or {}
            )

    def _resolve(self) -> Callable[[], Any]:
        """Find the callable and its arguments; our own refusals are not the task's bug."""
        state = app_state(self.app)
        try:
            # The allowlist confines the walk too: "app.jobs:os.system" is refused.
            found = locate_fresh(self.tache.method, state.allowed_modules)
        except TacheError as exc:
            raise Unresolvable() from exc
        if found.notice is not None:
            self.tache.log("notice", found.notice)
        target = found.target
        self.options = options_of(target.attr)  # @taches.task's, read in this process
        builtins = {
            "tache": self.tache,
            "app": self.app,
            "db": state.db,
            "logger": task_logger(self.tache, self.recorder.mask),
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
            raise Unresolvable() from exc

    def _retries(self, exc: BaseException) -> bool:
        """Whether the task's ``retry_on`` lets an attempt that raised ``exc`` be retried."""
        return self.options is None or self.options.retries(exc)

    # -- who records the end: the first to claim it ---------------------------------

    def _end(self, outcome: Outcome) -> Status | None:
        """Back from the task: record its end, unless the watchdog gave up on it first."""
        if not self.stops.claim_end():
            self.watchdog.join()  # it records the end and exits the process
            return None
        return self.ending.conclude(outcome, time.monotonic() - self.started)

    def _give_up(self, grace: float) -> None:
        """From the watchdog: the task ignored its stop for ``grace`` seconds."""
        stop = self.stops.stop
        if stop is not None and self.stops.claim_end():
            self.ending.abandon(stop, grace)

    def _extra(self, action: str) -> dict[str, Any]:
        return {"action": action, "tache_id": self.tache_id}
