"""The pages: the dashboard (``/``) and one task's page (``/<id>``).

Before showing tasks, a page asks the service to interrupt stale RUNNING tasks
(``rescue_stale``), so a task whose host died while no manager runs does not
show RUNNING forever.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from ..models import MAX_ID, Tache
from ..state import app_state
from ..status import Status
from .answers import BadInput, html, http_errors, no_store, task_answer
from .blueprint import blueprint
from .dashboard import Filters, dashboard_page
from .fragments import Fragments
from .inputs import INTEGER
from .live import live_rows, previous_id
from .overview import hidden_fields, overview
from .rows import shown_or_404, with_reasons


@blueprint.get("/<int:tache_id>")
@http_errors
def tache(tache_id: int) -> Any:
    """One task's page (or its JSON, for a client that asks for JSON)."""
    app_state().service.rescue_stale()
    return task_answer(shown_or_404(tache_id), _task_page)


def _task_page(item: Tache) -> str:
    return render_template("taches/tache.html", tache=item, previous_id=previous_id(item))


@blueprint.get("/")
@http_errors
def index() -> Any:
    """The dashboard: filtered tasks, newest first, by pages of ``PAGE_SIZE``."""
    filters = Filters.from_args(request.args)
    app_state().service.rescue_stale()
    before = _keyset_arg("before")
    after = _keyset_arg("after") if before is None else None
    # The figures first: each of their reads ends the session's idle read, which
    # expires its objects, and the page's 50 rows would be read again one by one.
    figures = overview(filters)
    page = dashboard_page(filters, before=before, after=after)
    with_reasons(page.taches)
    markup = render_template(
        "taches/index.html",
        page=page,
        filters=filters,
        statuses=list(Status),
        overview=figures,
        bulk_fields=hidden_fields(filters),
        live_rows=live_rows(filters, page) if before is None and after is None else None,
        taches_row_cells=Fragments().row,  # each row's cells, a finished one's kept
    )
    return no_store(html(markup))


def _keyset_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not INTEGER.fullmatch(raw) or raw.startswith("-"):
        raise BadInput(f"{name}={raw[:40]!r} is not a task id")
    return min(int(raw), MAX_ID)
