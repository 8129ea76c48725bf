"""Commands about single tasks: run, add, list, show, cancel, restart, delete, purge."""

from __future__ import annotations

from . import taches_cli  # noqa: F401
