"""What the benchmark runs: nothing, so that only flask-taches is measured."""

from __future__ import annotations


def noop() -> None:
    """A no-op task."""
