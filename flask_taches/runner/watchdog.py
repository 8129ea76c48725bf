"""The thread beside a running task: it writes live, beats, and stops the task.

Every tick it

* writes pending logs and progress (``Store.record_live``) at most every
  ``TACHES_FLUSH_INTERVAL`` seconds, so pages show them while the task runs;
* beats every ``TACHES_HEARTBEAT`` seconds, which also tells it whether a user
  asked to cancel the task and whether this attempt still owns the row (a
  manager that declared it dead has moved on: it is *fenced out*);
* enforces the task's ``timeout``;
* gives up on a task that ignored its stop for ``TACHES_KILL_GRACE`` seconds.

Stopping is the :class:`StopState`'s business; the watchdog only requests it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..clock import as_utc, utcnow
from ..status import Status
from ..store import Store
from .live import LiveRecorder
from .stopping import Stop, StopState, fenced_out

MIN_WAIT = 0.01  # seconds: the watchdog never loops faster than this

logger = logging.getLogger("flask_taches.runner")


@dataclass(frozen=True)
class Timings:
    """The watchdog's periods and limits, in seconds."""

    heartbeat: float
    flush_interval: float
    timeout: float | None
    kill_grace: float

    @classmethod
    def of(cls, config: Mapping[str, Any], task_timeout: float | None) -> Timings:
        """From the app's settings; the task's own ``timeout`` beats ``TACHES_TIMEOUT``."""
        timeout = task_timeout if task_timeout is not None else config["TACHES_TIMEOUT"]
        return cls(
            heartbeat=float(config["TACHES_HEARTBEAT"]),
            flush_interval=float(config["TACHES_FLUSH_INTERVAL"]),
            timeout=float(timeout) if timeout else None,
            kill_grace=float(config["TACHES_KILL_GRACE"]),
        )


@dataclass(frozen=True)
class WatchedAttempt:
    """The attempt a watchdog watches, and what it acts on."""

    tache_id: int
    attempt: int
    store: Store
    recorder: LiveRecorder
    stops: StopState
    #: Records the end and leaves the process: the task ignored its stop.
    give_up: Callable[[float], None]


class Watchdog(threading.Thread):
    """Flushes, beats, watches cancel/timeout/fencing, and stops the task when due."""

    def __init__(self, watched: WatchedAttempt, timings: Timings, wake: threading.Event) -> None:
        super().__init__(name=f"taches-watchdog-{watched.tache_id}", daemon=True)
        self.watched = watched
        self.timings = timings
        #: Set to make it tick now (pending logs, or its end).
        self.wake = wake
        self._done = threading.Event()
        self._last_flush = float("-inf")
        self._next_beat = 0.0
        self._deadline: float | None = None

    def start_at(self, started: float) -> None:
        """Start watching an attempt whose task started at monotonic time ``started``."""
        self._next_beat = started + self.timings.heartbeat
        timeout = self.timings.timeout
        self._deadline = started + timeout if timeout else None
        self.start()

    def stop(self) -> None:
        """Called by the task's thread once the end is recorded."""
        self._done.set()
        self.wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()

    def run(self) -> None:
        while not self._done.is_set():
            self.wake.wait(self._wait())
            self.wake.clear()
            if self._done.is_set():
                return
            try:
                self._tick(time.monotonic())
            except SQLAlchemyError as exc:
                # A missed beat is not fatal: the next tick tries again.
                tache_id = self.watched.tache_id
                logger.warning(
                    "task %s watchdog: database error: %s",
                    tache_id,
                    exc,
                    extra={"action": "watchdog_error", "tache_id": tache_id},
                )

    def _wait(self) -> float:
        due = [self._next_beat]
        if self._deadline is not None:
            due.append(self._deadline)
        if self.watched.recorder.dirty:
            due.append(self._last_flush + self.timings.flush_interval)
        give_up_at = self.watched.stops.give_up_at(self.timings.kill_grace)
        if give_up_at is not None:
            due.append(give_up_at)
        return max(MIN_WAIT, min(due) - time.monotonic())

    def _tick(self, now: float) -> None:
        watched, timings = self.watched, self.timings
        fenced = watched.stops.fenced
        flush_due = now - self._last_flush >= timings.flush_interval
        if not fenced and watched.recorder.dirty and flush_due:
            self._flush(now)
        if not fenced and now >= self._next_beat:
            self._next_beat = now + timings.heartbeat
            self._beat()
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            watched.stops.request_stop(Stop(Status.FAILED, f"timeout after {timings.timeout:g} s"))
        give_up_at = watched.stops.give_up_at(timings.kill_grace)
        if give_up_at is not None and now >= give_up_at:
            watched.give_up(timings.kill_grace)

    def _flush(self, now: float) -> None:
        watched = self.watched
        pending = watched.recorder.take()
        self._last_flush = now
        if pending is None:
            return
        logs, progress = pending
        try:
            ours = watched.store.record_live(
                watched.tache_id, watched.attempt, logs=logs, progress=progress
            )
        except SQLAlchemyError:
            watched.recorder.mark_dirty()
            raise
        if not ours:
            watched.stops.request_stop(fenced_out(watched.attempt))

    def _beat(self) -> None:
        watched = self.watched
        beat = watched.store.beat(watched.tache_id, watched.attempt)
        asker = beat.cancel_asked_by
        if not beat.owned:
            watched.stops.request_stop(fenced_out(watched.attempt))
        elif asker is not None:
            # When the cancel was asked, not when this beat noticed it.
            asked = as_utc(beat.cancel_asked_at) if beat.cancel_asked_at else utcnow()
            at = asked.isoformat(timespec="seconds")
            watched.stops.request_stop(
                Stop(Status.CANCELLED, f"cancelled by {asker} at {at}", "warning")
            )
