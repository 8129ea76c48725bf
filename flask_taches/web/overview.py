"""The dashboard's panels above the table: counts as filters, the last hour, bulk buttons.

Each panel is a partial of its own (``_counts.html``, ``_chart.html``,
``_bulk.html``) included by ``index.html``, and each reads what it shows from
:class:`Overview`; the figures come from :mod:`flask_taches.service.figures`,
so every web process draws the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import url_for

from .. import auth
from ..service import bulk, figures
from ..status import Status
from .dashboard import Filters

#: The chart's drawing box, in SVG user units (it scales to its container).
CHART_WIDTH = 600
CHART_HEIGHT = 80
#: The bulk buttons, in order: (action, route endpoint).
BULK_ACTIONS = (
    ("cancel", "cancel_all"),
    ("restart", "restart_failed"),
    ("delete", "delete_finished"),
)


@dataclass(frozen=True)
class Bar:
    """One minute of the chart, in SVG units: the completed under the failed."""

    x: float
    width: float
    completed_height: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    completed: int
    failed: int
    peak: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


@dataclass(frozen=True)
class Facet:
    """A count that is a link: the dashboard filtered on it."""

    value: str
    count: int
    url: str
    selected: bool


@dataclass(frozen=True)
class BulkButton:
    action: str
    endpoint: str
    #: None when SQL cannot count what the user may act on (an ``authorize`` hook).
    count: int | None


@dataclass(frozen=True)
class Overview:
    statuses: list[Facet]
    queues: list[Facet]
    chart: Chart | None
    bulk: list[BulkButton]


def overview(filters: Filters) -> Overview:
    """The figures of the dashboard under ``filters``; none under an ``authorize`` hook."""
    buttons = [
        BulkButton(action, endpoint, _bulk_count(filters, action))
        for action, endpoint in BULK_ACTIONS
        if auth.may_act_on_some()  # else none is shown: no count to read
    ]
    if not figures.figures_allowed():
        return Overview(statuses=[], queues=[], chart=None, bulk=buttons)
    shared = [*filters.conditions(queue=False), *filters.owner_condition()]
    counts = figures.counts(
        shared,
        status_filter=filters.status_condition(),
        queue_filter=filters.queue_condition(),
    )
    return Overview(
        statuses=_status_facets(filters, counts.by_status),
        queues=_queue_facets(filters, counts.by_queue),
        chart=chart(figures.last_hour([*shared, *filters.queue_condition()])),
        bulk=buttons,
    )


def _bulk_count(filters: Filters, action: str) -> int | None:
    return bulk.count(bulk.selection(action, filters.all_but_status(), filters.statuses))


def _status_facets(filters: Filters, by_status: dict[str, int]) -> list[Facet]:
    args = filters.query_args()
    args.pop("status", None)
    return [
        Facet(
            value=s.value,
            count=by_status.get(s.value, 0),
            url=url_for("taches.index", status=s.value, **args),
            selected=s.value in filters.statuses,
        )
        for s in Status
    ]


def _queue_facets(filters: Filters, by_queue: dict[str, int]) -> list[Facet]:
    args = filters.query_args()
    args.pop("queue", None)
    wanted = filters.text.get("queue")
    return [
        Facet(
            value=queue,
            count=n,
            url=url_for("taches.index", queue=queue, **args),
            selected=queue == wanted,
        )
        for queue, n in by_queue.items()
    ]


def chart(minutes: list[figures.Minute]) -> Chart:
    """Bars scaled to the busiest minute (at least 1, so an idle hour draws flat)."""
    peak = max([1, *(m.completed + m.failed for m in minutes)])
    width = CHART_WIDTH / max(1, len(minutes))
    bars = []
    for i, minute in enumerate(minutes):
        completed = CHART_HEIGHT * minute.completed / peak
        failed = CHART_HEIGHT * minute.failed / peak
        title = f"{minute.start:%H:%M} UTC: {minute.completed} ✓ {minute.failed} ✗"
        bars.append(Bar(i * width, width * 0.8, completed, failed, title))
    return Chart(
        bars=bars,
        completed=sum(m.completed for m in minutes),
        failed=sum(m.failed for m in minutes),
        peak=peak,
    )


def hidden_fields(filters: Filters) -> list[tuple[str, Any]]:
    """The filter as form fields, for the bulk forms (one ``status`` field per status)."""
    fields: list[tuple[str, Any]] = [("status", s) for s in filters.statuses]
    fields += [(name, value) for name, value in filters.text.items() if value]
    return fields
