"""Tasks declared with ``@taches.task``, for the decorator's and the retries' tests."""

from __future__ import annotations

from typing import Any

from flask_taches import Tache
from tests.app import taches


@taches.task(queue="decorated", max_attempts=2, priority=5, timeout=30)
def double(n: int) -> int:
    return n * 2


@taches.task(max_attempts=3, retry_on=(ConnectionError, TimeoutError))
def flaky(tache: Tache, fails: int = 1) -> int:
    """Raises ConnectionError on its first ``fails`` attempts, then returns its attempt."""
    if tache.attempts <= fails:
        raise ConnectionError(f"attempt {tache.attempts}: the server went away")
    return tache.attempts


@taches.task(max_attempts=3, retry_on=ConnectionError)
def wrong_error() -> None:
    raise ValueError("a bug, not a network hiccup")


@taches.task(max_attempts=3)
def asks_retry(tache: Tache, times: int = 1, delay: float = 0.0) -> int:
    """Asks for a retry on its first ``times`` attempts, then returns its attempt."""
    if tache.attempts <= times:
        tache.info(f"not ready at attempt {tache.attempts}")
        tache.retry(delay=delay)
    return tache.attempts


@taches.task(unique=True)
def imports(path: str) -> str:
    return path


@taches.task(on_success="tests.tasks:returns_nothing", on_failure="tests.tasks:returns_false")
def hooked() -> None:
    pass


@taches.task
def total(previous: list[int]) -> int:
    return sum(previous)


class Reports:
    """A service class: its instance method is a task, the class built by injection."""

    def __init__(self, prefix: str = "report") -> None:
        self.prefix = prefix

    @taches.task(queue="reports")
    def build(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @staticmethod
    @taches.task
    def count(items: list[Any]) -> int:
        return len(items)


@taches.task
def adds_another(tache: Tache, n: int) -> int:
    """Adds ``double(n)`` from inside a task; returns its id."""
    tache.info("adding a task from a task")
    return double.delay(n=n)
