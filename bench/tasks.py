"""What the benchmark runs: nothing, so that only flask-taches is measured."""

from __future__ import annotations

from bench.peers.report import report


def noop() -> None:
    """A no-op task."""


def reported(key: str, port: int) -> None:
    """The side-by-side run's no-op task: it says when its first line ran."""
    report(key, port)
