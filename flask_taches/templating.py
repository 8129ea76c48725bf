"""Jinja globals: ``render_tache()`` and ``taches_script()``."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the Jinja globals on ``app``."""
