"""Commands of the manager: start, stats."""

from __future__ import annotations

from . import taches_cli  # noqa: F401
