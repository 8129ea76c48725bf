"""What the batch route adds for live pages, beyond each task's fragments.

A page asks for all of it in its one batched request per tick
(``POST <prefix>/status``, JSON), next to ``ids`` and ``signatures``:

* ``"pages": [{"id": 42, "logs": 5}]``: a task page's parts, answered under
  ``pages["42"]``: ``fields_html``, ``result_html``, ``logs_html`` (the log
  entries from the 6th on: only what the page does not show yet) and ``logs``
  (how many entries there are);
* ``"rows": [42, 43]``: the dashboard rows whose cells come back as each
  task's ``row_html``;
* ``"newer": {"after": 120, "query": "status=FAILED&queue=mail"}``: the tasks
  above id 120 that the dashboard's filter selects, answered as
  ``newer: {"html": "<tr>…", "after": 131}``, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import render_template
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from ..models import Tache
from ..state import app_state
from .answers import BadInput
from .dashboard import Filters, Page, dashboard_page
from .fragments import Fragments
from .inputs import parse_id, refuse_unstorable
from .rows import with_reasons

#: Task pages one batch request may ask parts for (a page shows one; a few tabs' worth).
MAX_PAGES = 10
#: Longest filter query string a ``newer`` request may carry.
MAX_QUERY = 2000


@dataclass(frozen=True)
class LiveRows:
    """What the dashboard's newest page tells status.js to ask for new rows."""

    query: str
    after: int


def previous_id(tache: Tache) -> int | None:
    """The task before this one in its chain, if any."""
    session = app_state().db.session
    found: int | None = session.scalar(select(Tache.id).where(Tache.next_id == tache.id).limit(1))
    return found


def live_rows(filters: Filters, page: Page) -> LiveRows:
    after = max((t.id for t in page.taches), default=0)
    return LiveRows(query=urlencode(filters.query_args(), doseq=True), after=after)


def row_html(tache: Tache, fragments: Fragments) -> str:
    """The cells of one dashboard row."""
    with_reasons([tache])
    return str(fragments.row(tache))


def page_parts(tache: Tache, logs_shown: int) -> dict[str, Any]:
    """A task page's live parts; the log entries past the ``logs_shown`` first."""
    entries = [e for e in (tache.logs or []) if isinstance(e, dict)]
    new = entries[logs_shown:] if logs_shown <= len(entries) else entries
    return {
        "fields_html": render_template(
            "taches/_fields.html", tache=tache, previous_id=previous_id(tache)
        ),
        "result_html": render_template("taches/_page_result.html", tache=tache),
        "logs_html": "".join(
            render_template("taches/_log_entry.html", tache=tache, entry=e) for e in new
        ),
        "logs": len(entries),
        # Fewer entries than shown: the log was rewritten (a restart): start again.
        "logs_reset": logs_shown > len(entries),
    }


def newer_rows(spec: Any) -> dict[str, Any]:
    """The new rows of a dashboard: above ``after``, selected by its filter, newest first."""
    after, filters = parse_newer(spec)
    page = dashboard_page(filters, before=None, after=after)
    taches = with_reasons(sorted(page.taches, key=lambda t: t.id, reverse=True))
    cells = Fragments().row
    html = "".join(
        render_template("taches/_row.html", tache=t, taches_row_cells=cells) for t in taches
    )
    return {"html": html, "after": max([after, *(t.id for t in taches)])}


def parse_pages(value: Any) -> dict[int, int]:
    """``[{"id": 42, "logs": 5}]`` → ``{42: 5}``; a one-line 400 for anything else."""
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > MAX_PAGES:
        raise BadInput(f'"pages" must be a list of at most {MAX_PAGES} {{"id": n, "logs": n}}')
    pages: dict[int, int] = {}
    for item in value:
        if not isinstance(item, dict):
            raise BadInput('each of "pages" must be an object {"id": n, "logs": n}')
        pages[parse_id(item.get("id"))] = _count(item.get("logs", 0), "logs")
    return pages


def parse_rows(value: Any) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInput('"rows" must be a list of task ids')
    return [parse_id(v) for v in value]


def parse_newer(spec: Any) -> tuple[int, Filters]:
    if not isinstance(spec, dict):
        raise BadInput('"newer" must be an object {"after": id, "query": "status=..."}')
    after = _count(spec.get("after", 0), "after")
    query = spec.get("query", "")
    if not isinstance(query, str) or len(query) > MAX_QUERY:
        raise BadInput(f'"newer.query" must be a query string of at most {MAX_QUERY} characters')
    pairs = parse_qsl(query)
    for name, text in pairs:
        refuse_unstorable(f"newer.query {name[:40]}", text)
    return after, Filters.from_args(MultiDict(pairs))


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise BadInput(f'"{name}" must be a whole number from 0 up')
    return value
