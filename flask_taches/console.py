"""Live output of ``flask taches run ID -v``/``-vv``: log lines, debug lines, a progress bar.

On a terminal the lines are coloured and the progress bar is redrawn in place
(``\\r``) under them, fitted to the terminal's width; when the output is a pipe
or a file every line is plain text, one per event, so scripts (and tests) can
read it, with progress at most one line per :data:`PLAIN_PROGRESS_EVERY`
seconds (and its last state at the end). Under a manager (``start -vv``) each
line is in the manager's log format, prefixed with the task's id. ``parametres_caches``
never reaches this module: the runner hands it the method, the ``parametres``
and the log entries only (masked, see :mod:`flask_taches.runner.hiding`).

What a task or a user wrote never drives the terminal: :func:`printable` is the
one escaping of everything the commands print (``run -vv``, ``start -vv``,
``show``, ``list``, ``stats``), so an ANSI/OSC escape, a ``\\r`` or any other
control character shows as its visible ``\\x..`` form.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TextIO

from .preview import PREVIEW, preview
from .verbosity import log_level

BAR_WIDTH = 30  # characters of the progress bar on a terminal, at most
MIN_BAR_WIDTH = 5  # narrower than this, the bar is left out and the text cut
#: Seconds between two progress lines when the output is not a terminal.
PLAIN_PROGRESS_EVERY = 2.0
#: Characters of a log entry's details shown at -vv (a result gets ``PREVIEW``).
DETAILS_PREVIEW = PREVIEW * 10

RESET = "\033[0m"
CLEAR_LINE = "\r\033[K"
LEVEL_COLOURS = {
    "debug": "\033[2m",  # dim
    "info": "",
    "notice": "\033[36m",  # cyan
    "warning": "\033[33m",  # yellow
    "error": "\033[31m",  # red
    "critical": "\033[1;31m",  # bold red
}
STATUS_COLOURS = {
    "COMPLETED": "\033[32m",  # green
    "FAILED": "\033[31m",
    "INTERRUPTED": "\033[33m",
    "CANCELLED": "\033[33m",
    "TO_RUN": "\033[36m",  # a retry was scheduled
}
#: Stored log levels as ``logging`` levels, to filter what is shown.
LEVEL_NUMBERS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO + 5,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


#: C0 controls (but newline), DEL, C1 controls, and the bidirectional overrides
#: and isolates that reorder what a terminal shows ("Trojan Source").
_CONTROLS = [*range(0x00, 0x0A), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS},
    **{code: f"\\u{code:04x}" for code in _BIDI},
    0x09: "\\t",
    0x0D: "\\r",
}
_ESCAPES_ONE_LINE = {**_ESCAPES, 0x0A: "\\n"}


def printable(text: Any, *, newlines: bool = False) -> str:
    """``text`` safe for a terminal: every control character escaped (``\\x1b``...).

    ``newlines=True`` keeps line feeds (a traceback shown on several lines);
    otherwise they are escaped too, so one value is one line. The result has
    no control character left, so escaping it again changes nothing.
    """
    return str(text).translate(_ESCAPES if newlines else _ESCAPES_ONE_LINE)


class Console:
    """Writes what a running task does to a stream, thread-safely.

    ``verbosity`` 1 shows the start, the end and the stored log lines; 2 adds
    ``tache.debug()`` lines, details and the progress bar. ``task_id``: the lines
    of a manager's child, in the manager's format (never a bar, never colour).
    """

    def __init__(
        self,
        verbosity: int,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        colour: bool | None = None,
        task_id: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.level = log_level(verbosity)
        self.stream = stream if stream is not None else sys.stdout
        self.task_id = task_id
        self.tty = task_id is None and (self.stream.isatty() if tty is None else tty)
        default_colour = self.tty and "NO_COLOR" not in os.environ
        self.colour = task_id is None and (default_colour if colour is None else colour)
        self._clock = clock
        self._lock = threading.Lock()
        self._bar = ""  # the bar currently drawn on the terminal's last line
        self._last_progress = ""  # last plain progress line, to skip repeats
        self._held_progress = ""  # a plain progress line not printed yet (throttled)
        self._next_progress = float("-inf")  # when the next plain progress line may print

    @property
    def shows_debug(self) -> bool:
        return self.level <= logging.DEBUG

    # -- events ---------------------------------------------------------------------

    def started(
        self, tache_id: int, method: str, attempt: int, parametres: Mapping[str, Any]
    ) -> None:
        if self.level > logging.INFO:
            return
        text = f"{self._task(tache_id)}started: {method} (attempt {attempt}, pid {os.getpid()})"
        if parametres and self.shows_debug:
            text += f" parametres {preview(dict(parametres))}"
        self._line(text, "\033[1m")

    def log(self, entry: Mapping[str, Any]) -> None:
        level = str(entry.get("level", "info"))
        if LEVEL_NUMBERS.get(level, logging.INFO) < self.level:
            return
        self._entry(level, str(entry.get("message", "")), entry.get("details"), entry.get("at"))

    def debug(self, message: str, details: Any = None) -> None:
        if self.shows_debug:
            self._entry("debug", message, details, None)

    def progress(self, progress: Mapping[str, Any]) -> None:
        if not self.shows_debug:
            return
        text = _progress_text(progress)
        if self.tty:
            with self._lock:
                self._bar = self._bar_line(progress, text)
                self.stream.write(CLEAR_LINE + self._bar)
                self.stream.flush()
            return
        if text == self._last_progress:
            return
        self._last_progress = text
        now = self._clock()
        if now < self._next_progress:
            self._held_progress = text  # printed when the interval is over, or at the end
            return
        self._next_progress = now + PLAIN_PROGRESS_EVERY
        self._held_progress = ""
        self._line(f"progress {text}")

    def ended(self, tache_id: int, status: str, seconds: float, result: Any = None) -> None:
        if self.level > logging.INFO:
            return
        text = f"{self._task(tache_id)}{status} in {seconds:.2f} s"
        if result is not None:
            text += f": result {preview(result)}"
        self.close()  # the last bar stays above the end line
        self._line(text, STATUS_COLOURS.get(status, ""))

    def close(self) -> None:
        """Leave the terminal's cursor on a fresh line (the bar stays visible), and
        print the last progress the throttle held back."""
        self._release_progress()
        with self._lock:
            if self._bar:
                self.stream.write(CLEAR_LINE + self._bar + "\n")
                self._bar = ""
            self.stream.flush()

    # -- drawing --------------------------------------------------------------------

    def _entry(self, level: str, message: str, details: Any, at: Any) -> None:
        text = f"{level.upper():<8} {message}"
        if self.task_id is None:
            text = f"{_clock(at)} {text}"
        self._line(text, LEVEL_COLOURS.get(level, ""))
        if details is not None and self.shows_debug:
            # A traceback stays on its lines; any other control is escaped by _line.
            for line in preview(details, limit=DETAILS_PREVIEW).split("\n"):
                self._line(f"    {line}", LEVEL_COLOURS["debug"])

    def _release_progress(self) -> None:
        """The progress line the throttle held back, printed before any other line."""
        if self._held_progress:
            held, self._held_progress = self._held_progress, ""
            self._line(f"progress {held}")

    def _line(self, text: str, colour: str = "") -> None:
        """Print a line (escaped, then painted) above the progress bar, then redraw the bar."""
        self._release_progress()  # the progress reached so far comes before what follows
        text = self._paint(printable(text), colour)
        if self.task_id is not None:
            text = f"{_log_time()} task {self.task_id}: {text}"
        with self._lock:
            if self._bar:
                self.stream.write(CLEAR_LINE)
            self.stream.write(text + "\n")
            if self._bar:
                self.stream.write(self._bar)
            self.stream.flush()

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.colour and colour else text

    def _task(self, tache_id: int) -> str:
        """``task N `` at the head of a line, unless the prefix already says it."""
        return "" if self.task_id is not None else f"task {tache_id} "

    def _bar_line(self, progress: Mapping[str, Any], text: str) -> str:
        """``[####----] text`` within the terminal's width: a line that wrapped
        could not be redrawn in place."""
        text = printable(text)
        columns = shutil.get_terminal_size().columns - 1  # the last column wraps on some
        width = min(BAR_WIDTH, columns - len(text) - 3)
        if width < MIN_BAR_WIDTH:
            return text[: max(1, columns)]
        percent = progress.get("percent")
        filled = round(width * float(percent) / 100) if percent is not None else 0
        bar = "#" * filled + "-" * (width - filled)
        if self.colour:
            bar = f"\033[32m{'#' * filled}\033[2m{'-' * (width - filled)}{RESET}"
        return f"[{bar}] {text}"


def _progress_text(progress: Mapping[str, Any]) -> str:
    percent = progress.get("percent")
    parts = [f"{float(percent):5.1f}%" if percent is not None else "    ?%"]
    step, maximum = progress.get("step"), progress.get("max")
    parts.append(f"{_number(step)}/{_number(maximum)}" if maximum else f"{_number(step)}")
    phases = progress.get("phases") or 1
    if phases > 1:
        parts.append(f"phase {progress.get('phase') or 1}/{phases}")
    if progress.get("label"):
        parts.append(str(progress["label"]))
    return " ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _log_time() -> str:
    """Now as the manager's log lines show it (``logging``'s default ``asctime``)."""
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"


def _clock(at: Any) -> str:
    """Local ``HH:MM:SS`` of a log entry's ISO time, or of now for live-only lines."""
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
        except ValueError:
            return at[:8]
    return datetime.now().astimezone().strftime("%H:%M:%S")
