"""The extension's own Alembic branch, wired into Flask-Migrate."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Point Flask-Migrate at the extension's migrations."""
