"""Live output of ``flask taches run ID -v``/``-vv``: log lines, debug lines, a progress bar.

On a terminal the lines are coloured and the progress bar is redrawn in place
(``\\r``) under them; when the output is a pipe or a file every line is plain
text, one per event, so scripts (and tests) can read it. ``parametres_caches``
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
import sys
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

from .preview import PREVIEW, preview
from .verbosity import log_level

BAR_WIDTH = 30  # characters of the progress bar on a terminal
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
    ``tache.debug()`` lines, details and the progress bar.
    """

    def __init__(
        self,
        verbosity: int,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        colour: bool | None = None,
    ) -> None:
        self.level = log_level(verbosity)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.colour = (self.tty and "NO_COLOR" not in os.environ) if colour is None else colour
        self._lock = threading.Lock()
        self._bar = ""  # the bar currently drawn on the terminal's last line
        self._last_progress = ""  # last plain progress line, to skip repeats

    @property
    def shows_debug(self) -> bool:
        return self.level <= logging.DEBUG

    # -- events ---------------------------------------------------------------------

    def started(
        self, tache_id: int, method: str, attempt: int, parametres: Mapping[str, Any]
    ) -> None:
        if self.level > logging.INFO:
            return
        text = f"task {tache_id} started: {method} (attempt {attempt}, pid {os.getpid()})"
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
        if text != self._last_progress:
            self._last_progress = text
            self._line(f"progress {text}")

    def ended(self, tache_id: int, status: str, seconds: float, result: Any = None) -> None:
        if self.level > logging.INFO:
            return
        text = f"task {tache_id} {status} in {seconds:.2f} s"
        if result is not None:
            text += f": result {preview(result)}"
        self.close()  # the last bar stays above the end line
        self._line(text, STATUS_COLOURS.get(status, ""))

    def close(self) -> None:
        """Leave the terminal's cursor on a fresh line (the bar stays visible)."""
        with self._lock:
            if self._bar:
                self.stream.write(CLEAR_LINE + self._bar + "\n")
                self._bar = ""
            self.stream.flush()

    # -- drawing --------------------------------------------------------------------

    def _entry(self, level: str, message: str, details: Any, at: Any) -> None:
        clock = _clock(at)
        text = f"{clock} {level.upper():<8} {message}"
        self._line(text, LEVEL_COLOURS.get(level, ""))
        if details is not None and self.shows_debug:
            # A traceback stays on its lines; any other control is escaped by _line.
            for line in preview(details, limit=DETAILS_PREVIEW).split("\n"):
                self._line(f"    {line}", LEVEL_COLOURS["debug"])

    def _line(self, text: str, colour: str = "") -> None:
        """Print a line (escaped, then painted) above the progress bar, then redraw the bar."""
        text = self._paint(printable(text), colour)
        with self._lock:
            if self._bar:
                self.stream.write(CLEAR_LINE)
            self.stream.write(text + "\n")
            if self._bar:
                self.stream.write(self._bar)
            self.stream.flush()

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.colour and colour else text

    def _bar_line(self, progress: Mapping[str, Any], text: str) -> str:
        text = printable(text)
        percent = progress.get("percent")
        filled = round(BAR_WIDTH * float(percent) / 100) if percent is not None else 0
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        if self.colour:
            bar = f"\033[32m{'#' * filled}\033[2m{'-' * (BAR_WIDTH - filled)}{RESET}"
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


def _clock(at: Any) -> str:
    """Local ``HH:MM:SS`` of a log entry's ISO time, or of now for live-only lines."""
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
        except ValueError:
            return at[:8]
    return datetime.now().astimezone().strftime("%H:%M:%S")
