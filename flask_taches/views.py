"""The ``taches`` blueprint: status fragments, JSON, batch, dashboard, actions."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint(
    "taches",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
