"""Recording how an attempt ended, by whichever party claimed the end.

The task's thread, back from the task, records its :class:`Outcome` (a stop
decided meanwhile wins over it); the watchdog, when the task ignored its stop
for ``TACHES_KILL_GRACE``, records the stop and makes the process leave. Who
may do it is decided by :meth:`StopState.claim_end`, before either gets here.
Nothing is written for an attempt that was fenced out.

The end is the one write a task's process must not lose: when the database
is out of reach it tries again, backing off, for :data:`END_RETRY_FOR`
seconds (a server restart, a failover), before it gives up (the row is then
rescued as any dead task's). When the server answers but refuses this end
(too big for one packet, say), the end is stored FAILED without its result,
with a log saying why, rather than not at all: a task whose end was lost
would be run again.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ..console import Console
from ..exit_codes import EXIT_ENDED
from ..lifecycle import LogEntry
from ..status import Status
from ..store import Store
from ..store.records import Asked
from .capping import json_size, oversized_result, size_in_words
from .live import LiveRecorder, entry_now
from .outcome import Outcome
from .stopping import Stop

END_RETRY_FOR = 60.0  # seconds a task's process keeps trying to record its end
FIRST_RETRY_DELAY = 0.1  # seconds before the first retry; doubles up to the next
MAX_RETRY_DELAY = 2.0
REFUSALS = 2  # failures with the server answering, after which this end cannot be stored
MAX_KEPT_LOGS = 100  # entries an unstorable end keeps (the last ones)
MAX_KEPT_ENTRY = 4096  # bytes: a bigger entry of an unstorable end is left out

logger = logging.getLogger("flask_taches.runner")


class Ending:
    """Writes the end of one attempt: its status, result and every log collected."""

    def __init__(
        self,
        store: Store,
        tache_id: int,
        attempt: int,
        recorder: LiveRecorder,
        console: Console | None,
        *,
        max_result_size: int | None = None,
    ) -> None:
        self.store = store
        #: ``TACHES_MAX_RESULT_SIZE``: a bigger result ends the attempt FAILED.
        self.max_result_size = max_result_size
        self.tache_id = tache_id
        self.attempt = attempt
        self.recorder = recorder
        self.console = console

    def conclude(self, outcome: Outcome, elapsed: float) -> Status | None:
        """From the task's thread: record the outcome, or the stop that beat it."""
        stop = outcome.stop
        if stop is not None and stop.fenced:
            self._fenced(stop)
            return None
        status, entries = outcome.status, list(outcome.entries)
        result = self.recorder.mask.value(outcome.result)  # kept and shown, so masked
        retry = outcome.retry
        if stop is not None:
            assert stop.status is not None
            status, result, retry = stop.status, None, True
            entries.append(stop.entry())
        asked = outcome.asked if stop is None else None  # a stop wins over the ask
        too_big = oversized_result(result, self.max_result_size)
        if too_big is not None:
            # Another attempt would return as much again: no retry.
            status, result, retry, asked = Status.FAILED, None, False, None
            entries.append(entry_now("error", too_big))
        final = self.record(status, result, entries, retry=retry, asked=asked)
        logger.info(
            "task %s attempt %s ended %s in %.2f s (stored %s)",
            self.tache_id,
            self.attempt,
            status.value,
            elapsed,
            final.value if final is not None else "nothing: fenced out",
            extra=self._extra("ended"),
        )
        if self.console is not None:
            shown = final.value if final is not None else f"{status.value} (not recorded)"
            self.console.ended(self.tache_id, shown, elapsed, result)
        return final

    def abandon(self, stop: Stop, grace: float) -> None:
        """From the watchdog: the task ignored ``stop``; record it and leave the process."""
        note = f"the task did not stop within {grace:g} s of being asked; its process exits"
        logger.error("task %s: %s", self.tache_id, note, extra=self._extra("abandoned"))
        try:
            if not stop.fenced:
                assert stop.status is not None
                self.record(stop.status, None, [stop.entry(), entry_now("error", note)])
            if self.console is not None:
                self.console.close()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            # Whatever failed above (the database down, a closed pipe), the process
            # must go: a live, beating process would keep the row RUNNING for ever.
            # Its row, if unrecorded, is then rescued as any dead task's.
            # Its end is the stop's (FAILED, CANCELLED...), whether or not it got written.
            os._exit(EXIT_ENDED)

    def record(
        self,
        status: Status,
        result: Any,
        entries: list[LogEntry],
        retry: bool = True,
        asked: Asked | None = None,
    ) -> Status | None:
        """The end's write, fenced by the attempt, tried again while the database is away."""
        for entry in entries:
            self.recorder.append(entry)
        logs, progress = self.recorder.snapshot()
        errors = (DBAPIError, self.store.engine.dialect.loaded_dbapi.Error)
        deadline = time.monotonic() + END_RETRY_FOR
        delay, refusals = FIRST_RETRY_DELAY, 0
        while True:
            try:
                return self.store.record_end(
                    self.tache_id,
                    self.attempt,
                    status,
                    result=result,
                    logs=logs,
                    progress=progress,
                    retry=retry,
                    asked=asked,
                )
            except errors as exc:
                self.store.drop_connections()  # the next try on a fresh connection
                # A lock conflict or a full disk passes; a server that answers yet
                # refuses this end won't.
                refusals += not _passing(exc) and self._server_answers()
                if refusals >= REFUSALS:
                    return self._record_unstorable(status, result, logs, exc)
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning(
                    "task %s: recording its end failed (%s); trying again",
                    self.tache_id,
                    _first_line(exc),
                    extra=self._extra("finish_retry"),
                )
            time.sleep(delay)
            delay = min(MAX_RETRY_DELAY, delay * 2)

    def _server_answers(self) -> bool:
        """Whether the database answers a trivial query (then the end itself is refused)."""
        try:
            with self.store.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure here means: not reachable now
            return False
        return True

    def _record_unstorable(
        self, status: Status, result: Any, logs: list[LogEntry], exc: BaseException
    ) -> Status | None:
        """The server refuses this end: store it FAILED, small, saying why; never run again."""
        reason = (
            f"the end ({status.value}) could not be stored: result"
            f" {size_in_words(max(0, json_size(result)))}, logs"
            f" {size_in_words(max(0, json_size(logs)))} in {len(logs)} entries;"
            f" the database said: {_first_line(exc)}"
        )
        logger.error("task %s: %s", self.tache_id, reason, extra=self._extra("end_refused"))
        kept = [entry for entry in logs if json_size(entry) <= MAX_KEPT_ENTRY][-MAX_KEPT_LOGS:]
        return self.store.record_end(
            self.tache_id,
            self.attempt,
            Status.FAILED,
            result=None,
            logs=[*kept, entry_now("error", reason)],
            progress=None,
            retry=False,
        )

    def _fenced(self, stop: Stop) -> None:
        logger.warning(
            "task %s attempt %s: %s",
            self.tache_id,
            self.attempt,
            stop.message,
            extra=self._extra("fenced"),
        )
        if self.console is not None:
            self.console.close()

    def _extra(self, action: str) -> dict[str, Any]:
        return {"action": action, "tache_id": self.tache_id}


def _first_line(exc: BaseException) -> str:
    """The driver's message, first line (without SQLAlchemy's background link)."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


#: Words of the errors that pass: another transaction in the way, a disk full for now.
PASSING_WORDS = ("locked", "deadlock", "lock wait", "could not serialize", "full", "no space")


def _passing(exc: BaseException) -> bool:
    return any(word in str(exc).lower() for word in PASSING_WORDS)
