"""The ``-v`` count of a command as a ``logging`` level (``run``'s console, ``start``'s lines)."""

from __future__ import annotations

import logging


def log_level(verbosity: int, *, debug_from: int = 2) -> int:
    """0 WARNING; 1 up to ``debug_from - 1``: INFO; ``debug_from`` and more: DEBUG.

    ``run`` shows debug lines at ``-vv``; ``start`` keeps ``-vv`` for passing its
    tasks' own output through, so its own debug lines wait for ``-vvv``.
    """
    if verbosity <= 0:
        return logging.WARNING
    if verbosity < debug_from:
        return logging.INFO
    return logging.DEBUG
