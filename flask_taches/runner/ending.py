"""Recording how an attempt ended, by whichever party claimed the end.

The task's thread, back from the task, records its :class:`Outcome` (a stop
decided meanwhile wins over it); the watchdog, when the task ignored its stop
for ``TACHES_KILL_GRACE``, records the stop and makes the process leave. Who
may do it is decided by :meth:`StopState.claim_end`, before either gets here.
Nothing is written for an attempt that was fenced out.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from sqlalchemy.exc import OperationalError

from ..console import Console
from ..exit_codes import EXIT_ENDED
from ..lifecycle import LogEntry
from ..status import Status
from ..store import Store
from ..store.records import Asked
from .live import LiveRecorder, entry_now
from .outcome import Outcome
from .stopping import Stop

FINISH_TRIES = 3  # attempts to record the end when the database hiccups
FINISH_RETRY_DELAY = 0.5  # seconds, times the try number, between those attempts

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
    ) -> None:
        self.store = store
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
        if stop is not None:
            assert stop.status is not None
            status, result = stop.status, None
            entries.append(stop.entry())
        asked = outcome.asked if stop is None else None  # a stop wins over the ask
        final = self.record(
            status, result, entries, retry=outcome.retry or stop is not None, asked=asked
        )
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
        """The end's write, fenced by the attempt, tried again when the database hiccups."""
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
                    asked=asked,
                )
            except OperationalError as exc:
                if tried == FINISH_TRIES:
                    raise
                logger.warning(
                    "task %s: recording its end failed (%s); trying again",
                    self.tache_id,
                    exc.orig,
                    extra=self._extra("finish_retry"),
                )
                time.sleep(FINISH_RETRY_DELAY * tried)
        raise AssertionError("unreachable")  # the loop returns or raises

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
