"""The dashboard's bulk actions, on exactly what its filter selects.

``POST /cancel-all``, ``/restart-failed`` and ``/delete-finished`` take the
filter's own fields (``status``, ``method``, ``signature``, ``owner``,
``queue``, as the dashboard's query string names them) and act on each task
they select that the user may act on; with none, on every such task. They
answer JSON ``{"report": {...}}`` to ``fetch``, and redirect a form back to
the dashboard with the report flashed (category ``taches``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, jsonify, redirect, request

from .. import auth
from ..service import bulk
from . import csrf, i18n
from .answers import http_errors, no_store, wants_json
from .blueprint import blueprint
from .dashboard import Filters
from .redirects import back_to_dashboard

#: ``(path, endpoint, action)`` of each bulk route.
BULK_ROUTES = (
    ("/cancel-all", "cancel_all", "cancel"),
    ("/restart-failed", "restart_failed", "restart"),
    ("/delete-finished", "delete_finished", "delete"),
)
#: The category of the flashed report, for a page that shows flashes.
FLASH_CATEGORY = "taches"


def act_on_selection(action: str) -> Any:
    """Check the token, select with the posted filter, act, report."""
    csrf.check()
    filters = Filters.from_args(request.form)
    conditions = bulk.selection(action, filters.all_but_status(), filters.statuses)
    report = bulk.run(action, conditions, who=auth.current_owner() or "web")
    if wants_json():
        data = report.as_dict()
        return no_store(jsonify(report=data, **_legacy(data)))
    flash(report_text(report), FLASH_CATEGORY)
    return redirect(back_to_dashboard(), code=303)


def _legacy(data: dict[str, Any]) -> dict[str, Any]:
    """``cancelled`` at the top level too, as cancel-all answered before it reported."""
    return {"cancelled": data["cancelled"]} if "cancelled" in data else {}


def report_text(report: bulk.BulkReport) -> str:
    """The report in words: "3 cancelled, 1 asked to stop, 2 already finished"."""
    done_key = {"cancel": "cancelled", "restart": "restarted", "delete": "deleted"}[report.action]
    parts = [i18n.text(f"report.{done_key}", n=len(report.done))]
    if report.stopping:
        parts.append(i18n.text("report.stopping", n=len(report.stopping)))
    if report.too_late:
        key = "report.too_late" if report.action == "cancel" else "report.skipped"
        parts.append(i18n.text(key, n=len(report.too_late)))
    return ", ".join(parts)


def _bulk_view(endpoint: str, action: str) -> Callable[[], Any]:
    def view() -> Any:
        return act_on_selection(action)

    view.__name__ = endpoint
    view.__doc__ = f"POST: {action} every task the posted filter selects (CSRF token required)."
    return csrf.checks_its_own(http_errors(view))


for _path, _endpoint, _action in BULK_ROUTES:
    blueprint.add_url_rule(
        _path, endpoint=_endpoint, view_func=_bulk_view(_endpoint, _action), methods=["POST"]
    )
