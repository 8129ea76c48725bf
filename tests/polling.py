"""Waiting for something another process does: poll with a deadline, never a timed assert."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    what: str,
    timeout: float,
    details: Callable[[], str] = lambda: "",
    interval: float = 0.02,
) -> T:
    """Return ``probe()`` once truthy; fail saying what was awaited (and ``details()``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = details()
            message = f"{what}: not seen within {timeout:g} s"
            raise AssertionError(f"{message}\n{extra}" if extra else message)
        time.sleep(interval)
