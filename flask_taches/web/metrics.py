"""``GET <prefix>/metrics``: the Prometheus text format, read from the database.

Every figure comes from the table and the managers registry
(:func:`flask_taches.service.health.figures`), so whichever web process the
scraper reaches answers the same. Built with the official client,
``prometheus_client`` (the ``metrics`` extra), imported on first use.

Admins only (the admin loader, ``TACHES_IS_ADMIN``), or a scraper that sends
``Authorization: Bearer <TACHES_METRICS_TOKEN>`` (compared in constant time).
"""

from __future__ import annotations

import bisect
import hmac
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, request

from .. import auth
from ..service import health as service_health
from ..status import FINISHED, Status
from .answers import fail, no_store
from .blueprint import blueprint

#: Upper bounds (seconds) of the duration histogram's buckets; +Inf is added.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
_FINISHED = sorted(s.value for s in FINISHED)


@blueprint.get("/metrics")
def metrics() -> Response:
    if not _allowed():
        fail(403, "metrics are for admins, or a scraper with the TACHES_METRICS_TOKEN")
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
    except ImportError:
        fail(501, "metrics need prometheus_client: pip install 'flask-taches[metrics]'")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(service_health.figures()))
    response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    return no_store(response)


def _allowed() -> bool:
    token = current_app.config.get("TACHES_METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), str(token).encode()
        ):
            return True
    return auth.is_admin()


class _Collector:
    """One scrape's figures as Prometheus metric families."""

    def __init__(self, figures: service_health.Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        figures = self.figures
        tasks = GaugeMetricFamily(
            "taches_tasks", "Tasks in the table, by status and queue.", labels=["status", "queue"]
        )
        for queue, counts in sorted(figures.by_queue.items()):
            for status in Status:
                tasks.add_metric([status.value, queue], counts.get(status.value, 0))
        yield tasks
        oldest = GaugeMetricFamily(
            "taches_oldest_ready_age_seconds",
            "Seconds the oldest ready TO_RUN task of each queue has waited.",
            labels=["queue"],
        )
        for queue, age in sorted(figures.oldest_ready.items()):
            oldest.add_metric([queue], age)
        yield oldest
        yield GaugeMetricFamily(
            "taches_managers",
            "Live managers (seen within the heartbeat timeout).",
            value=figures.managers,
        )
        yield GaugeMetricFamily(
            "taches_managers_running_tasks",
            "Tasks the live managers said they run, at their last beat.",
            value=figures.managers_running,
        )
        ended = GaugeMetricFamily(
            "taches_ended_tasks",
            "Tasks that ended in the last N minutes, by final status.",
            labels=["status", "window"],
        )
        for minutes, by_status in sorted(figures.ended.items()):
            for name in _FINISHED:
                ended.add_metric([name, f"{minutes}m"], by_status.get(name, 0))
        yield ended
        yield _histogram(HistogramMetricFamily, figures.durations)


def _histogram(family: Any, durations: list[float]) -> Any:
    ordered = sorted(durations)
    # Cumulative, as Prometheus counts them: the tasks that took at most each bound.
    buckets = [(f"{bound:g}", bisect.bisect_right(ordered, bound)) for bound in DURATION_BUCKETS]
    buckets.append(("+Inf", len(ordered)))
    return family(
        "taches_task_duration_seconds",
        f"Start to end of the tasks ended in the last {service_health.DURATION_WINDOW} minutes.",
        buckets=buckets,
        sum_value=sum(durations),
    )
