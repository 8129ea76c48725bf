"""A running task's logs and progress, collected for the watchdog to write live.

The task's ``tache`` reports every log entry and progress update to a
:class:`LiveRecorder` (see :class:`flask_taches.models.Recorder`); the watchdog
takes what changed at most every ``TACHES_FLUSH_INTERVAL`` seconds and writes
it, fenced by the attempt. Records of the task's ``logger`` become log entries
through :class:`TacheLogHandler`.

Everything enters here, so here is where the task's hidden parameters are
masked (:mod:`.hiding`): every log entry, debug line and progress label, before
it is kept, written or shown.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ..clock import utcnow
from ..console import Console
from ..lifecycle import LogEntry, log_entry
from ..models import Tache
from .capping import LogCap
from .hiding import Mask

#: Parent of every task's ``logger`` (``flask_taches.tache.<id>``).
TASK_LOGGER = "flask_taches.tache"

#: ``logging`` levels as stored log levels, highest first (below INFO is debug).
STORED_LEVELS = (
    (logging.CRITICAL, "critical"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warning"),
    (logging.INFO, "info"),
)

Pending = tuple[list[LogEntry], "dict[str, Any] | None"]


def entry_now(level: str, message: str, details: Any = None) -> LogEntry:
    """A log entry stamped now: what the runner itself adds to a task's logs."""
    return log_entry(level, message, utcnow(), details)


class LiveRecorder:
    """Collects a running task's logs and progress for the watchdog to flush.

    Thread-safe, since a task may log from its own threads. Entries are
    appended in place; a copy is made per flush (whose write serialises the
    whole list anyway), never per entry.
    """

    def __init__(
        self,
        logs: list[LogEntry],
        progress: dict[str, Any] | None,
        console: Console | None,
        wake: Callable[[], None],
        mask: Mask | None = None,
        max_logs: int | None = None,
    ) -> None:
        #: Hides the task's ``parametres_caches`` in all it says (and in its result).
        self.mask = mask if mask is not None else Mask(None)
        #: ``TACHES_MAX_LOGS``: the entries over it are counted, not kept.
        self._cap = LogCap(max_logs) if max_logs else None
        self._lock = threading.Lock()
        self._logs = list(logs)  # ours: what the task does to tache.logs is not stored
        self._progress = progress
        self._dirty = False
        self._console = console
        self._wake = wake

    @property
    def dirty(self) -> bool:
        return self._dirty

    def append(self, entry: LogEntry) -> None:
        entry = self.hidden_entry(entry)
        with self._lock:
            if self._cap is None:
                self._logs.append(entry)
            else:
                self._cap.admit(self._logs, entry)
            was_dirty, self._dirty = self._dirty, True
        if self._console is not None:
            self._console.log(entry)
        if not was_dirty:  # else the watchdog already knows a flush is due
            self._wake()

    def on_log(self, tache: Tache, entry: LogEntry) -> None:
        self.append(entry)

    def on_progress(self, tache: Tache, progress: dict[str, Any]) -> None:
        if progress.get("label") is not None and self.mask:
            progress = {**progress, "label": self.mask.value(progress["label"])}
        with self._lock:
            self._progress = progress
            was_dirty, self._dirty = self._dirty, True
        if self._console is not None:
            self._console.progress(progress)
        if not was_dirty:
            self._wake()

    def on_debug(self, tache: Tache, message: str, details: Any) -> None:
        if self._console is not None:
            self._console.debug(self.mask.text(message), self.mask.value(details))

    def hidden_entry(self, entry: LogEntry) -> LogEntry:
        """The entry with the hidden parameters masked in its message and details."""
        if not self.mask:
            return entry
        masked = dict(entry)
        for key in ("message", "details"):
            if key in masked:
                masked[key] = self.mask.value(masked[key])
        return masked

    def take(self) -> Pending | None:
        """What is to be written since the last take (a copy, to write unlocked), or None."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return self._kept(), self._progress

    def mark_dirty(self) -> None:
        """A flush failed: keep the changes for the next one."""
        with self._lock:
            self._dirty = True

    def snapshot(self) -> Pending:
        """Everything collected, for the end's write."""
        with self._lock:
            return self._kept(), self._progress

    def _kept(self) -> list[LogEntry]:
        """A copy of the entries, and the one saying how many were left out, if any."""
        note = self._cap.note(entry_now) if self._cap is not None else None
        return [*self._logs, note] if note is not None else list(self._logs)


class TacheLogHandler(logging.Handler):
    """Sends the task's ``logger`` records to its logs (INFO and up) or console (DEBUG)."""

    def __init__(self, tache: Tache) -> None:
        super().__init__(logging.DEBUG)
        self.tache = tache

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            details = record.exc_text  # set (and masked) by HiddenValuesFilter
            if details is None and record.exc_info:
                details = "".join(traceback.format_exception(*record.exc_info))
            level = stored_level(record.levelno)
            if level is None:
                self.tache.debug(message, details)
            else:
                self.tache.log(level, message, details)
        except Exception:
            self.handleError(record)


class HiddenValuesFilter(logging.Filter):
    """Masks a task's ``logger`` records before any handler sees them.

    The records go on to ``flask_taches.tache`` and the application's own
    handlers: they get the text masked as the stored logs are (the message,
    the traceback's text and the stack; ``exc_info`` itself stays, for
    handlers that walk the frames).
    """

    def __init__(self, mask: Mask) -> None:
        super().__init__()
        self.mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.mask.text(record.getMessage()), None
        if record.exc_info and record.exc_text is None:
            # logging.Formatter's own text of it, which formatters then reuse.
            text = "".join(traceback.format_exception(*record.exc_info)).removesuffix("\n")
            record.exc_text = self.mask.text(text)
        if record.stack_info:
            record.stack_info = self.mask.text(record.stack_info)
        return True


def stored_level(levelno: int) -> str | None:
    """The log level a record is stored with; None below INFO (shown, never stored)."""
    for threshold, name in STORED_LEVELS:
        if levelno >= threshold:
            return name
    return None


def task_logger(tache: Tache, mask: Mask | None = None) -> logging.Logger:
    """A logger for one run, outside logging's registry (so it is not kept forever).

    Its records also propagate to ``flask_taches.tache`` for the application's
    handlers, with the task's hidden parameters masked.
    """
    task_log = logging.Logger(f"{TASK_LOGGER}.{tache.id}", logging.DEBUG)
    task_log.parent = logging.getLogger(TASK_LOGGER)
    if mask:
        task_log.addFilter(HiddenValuesFilter(mask))
    task_log.addHandler(TacheLogHandler(tache))
    return task_log
