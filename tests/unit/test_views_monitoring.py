"""``/health`` and ``/metrics``: read from the database, on every database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from flask_taches.state import app_state
from flask_taches.store import managers as registry
from tests.web import SECRET, USERS, as_user, make, running

pytestmark = pytest.mark.taches_config(**USERS)
TOKEN = "scrape-7c1e-token"
ADMIN = as_user("root", admin=True)


def join_manager(app: Flask, running_tasks: int) -> None:
    with app.app_context():
        store = app_state().store
        info = registry.ManagerInfo("host-a", 4242, "0.1.0", (), 5, "fork")
        registry.beat(store, registry.join(store, info), running_tasks, 30)


def table_counts(app: Flask) -> dict[tuple[str, str], int]:
    T = taches_table.c
    with app.app_context(), app_state().store.read() as conn:
        rows = conn.execute(select(T.status, T.queue, func.count()).group_by(T.status, T.queue))
        return {(status, queue): n for status, queue, n in rows}


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample, by metric family, as prometheus_client's own parser reads them."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_metrics_parse_and_match_the_table(any_db_app: Flask) -> None:
    app = any_db_app
    now = utcnow()
    for seconds in (0.2, 2.0, 40.0):
        make(app, status="COMPLETED", started_at=now - timedelta(seconds=seconds), ended_at=now)
    make(app, status="FAILED", queue="mail", started_at=now, ended_at=now)
    make(app, status="FAILED", queue="mail", started_at=now, ended_at=now - timedelta(hours=2))
    running(app, queue="mail")
    make(app, queue="pdf", run_at=now - timedelta(minutes=10))
    make(app, queue="pdf", run_at=now + timedelta(hours=1))  # not ready yet
    join_manager(app, running_tasks=1)

    response = app.test_client().get("/taches/metrics", headers=ADMIN)

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    assert SECRET not in text
    found = samples(text)
    tasks = {(s.labels["status"], s.labels["queue"]): s.value for s in found["taches_tasks"]}
    assert {key: n for key, n in tasks.items() if n} == table_counts(app)
    assert tasks[("WAITING", "default")] == 0  # every status of every queue is there
    oldest = {s.labels["queue"]: s.value for s in found["taches_oldest_ready_age_seconds"]}
    assert set(oldest) == {"pdf"} and 590 < oldest["pdf"] < 3600
    assert found["taches_managers"][0].value == 1
    assert found["taches_managers_running_tasks"][0].value == 1
    ended = {(s.labels["status"], s.labels["window"]): s.value for s in found["taches_ended_tasks"]}
    assert (ended[("COMPLETED", "15m")], ended[("FAILED", "15m")]) == (3, 1)
    assert ended[("CANCELLED", "1m")] == 0
    histogram = {
        (s.name, s.labels.get("le")): s.value for s in found["taches_task_duration_seconds"]
    }
    assert histogram[("taches_task_duration_seconds_count", None)] == 4
    assert histogram[("taches_task_duration_seconds_bucket", "0.5")] == 2  # 0.2 s and 0 s
    assert histogram[("taches_task_duration_seconds_bucket", "5")] == 3
    assert histogram[("taches_task_duration_seconds_bucket", "+Inf")] == 4
    assert 42 < histogram[("taches_task_duration_seconds_sum", None)] < 43


@pytest.mark.parametrize(
    "headers",
    [{}, as_user("bob"), as_user("bob", Authorization="Bearer wrong")],
    ids=["anonymous", "user", "bad-token"],
)
def test_metrics_refuse_who_is_not_an_admin(app: Flask, headers: dict[str, str]) -> None:
    app.config["TACHES_METRICS_TOKEN"] = TOKEN
    make(app)
    response = app.test_client().get("/taches/metrics", headers=headers)
    assert response.status_code == 403
    assert "taches_tasks" not in response.get_data(as_text=True)


def test_metrics_take_the_scrapers_token(app: Flask) -> None:
    client = app.test_client()
    assert (
        client.get("/taches/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        == 403
    )
    app.config["TACHES_METRICS_TOKEN"] = TOKEN
    response = client.get("/taches/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "taches_managers 0.0" in response.get_data(as_text=True)


def test_health_says_ok_and_how_many_managers_and_nothing_of_tasks(any_db_app: Flask) -> None:
    make(any_db_app, signature="invoice-42")
    client = any_db_app.test_client()
    assert client.get("/taches/health").get_json() == {"status": "ok", "managers": 0}
    join_manager(any_db_app, running_tasks=0)
    response = client.get("/taches/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok", "managers": 1})
    assert response.headers["Cache-Control"] == "no-store"


def test_health_is_503_when_the_database_does_not_answer(app: Flask, tmp_path) -> None:
    with app.app_context():
        app_state().db.drop_all()
    response = app.test_client().get("/taches/health")
    assert (response.status_code, response.get_json()) == (503, {"status": "unavailable"})


def test_the_dashboard_shows_the_live_managers(app: Flask) -> None:
    client = app.test_client()
    empty = client.get("/taches/", headers=ADMIN).get_data(as_text=True)
    assert 'data-taches-panel="managers" data-count="0"' in empty
    assert "No live manager" in empty
    with app.app_context():
        store = app_state().store
        info = registry.ManagerInfo("web-1.example", 4242, "0.1.0", ("mail", "pdf"), 5, "fork")
        registry.beat(store, registry.join(store, info), 2, 30)
    shown = client.get("/taches/", headers=as_user("bob")).get_data(as_text=True)
    assert 'data-taches-panel="managers" data-count="1"' in shown
    assert '<tr class="taches-manager" data-pid="4242"><td><code>web-1.example</code>' in shown
    assert "<td>2/5</td><td>mail, pdf</td>" in shown
