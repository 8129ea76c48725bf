"""The dashboard: filters, keyset pagination, who sees what, cancel-all."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import event, update

from flask_taches import Status, Tache
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from flask_taches.service import figures
from flask_taches.web.dashboard import PAGE_SIZE
from tests.app import db, taches
from tests.web import JSON, USERS, as_user, csrf_token, make, read

pytestmark = pytest.mark.taches_config(**USERS)


@pytest.fixture
def app(any_db_app: Flask) -> Flask:
    """Every dashboard test on each database: SQLite, PostgreSQL, MariaDB."""
    return any_db_app


_ROW = re.compile(r'<tr class="tache tache-row" data-id="(\d+)"')
_LINK = re.compile(r'class="taches-pager__(\w+)"(?: rel="\w+")? href="([^"]+)"')


def add_many(app: Flask, count: int, **fields: Any) -> list[int]:
    with app.app_context():
        return taches.add_many(
            Tache(method="tests.tasks:add", owner=fields.get("owner"), **_columns(fields))
            for _ in range(count)
        )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "owner"}


def page(app: Flask, url: str = "/taches/", **headers: str) -> tuple[list[int], dict[str, str]]:
    """The ids of the rows shown, and the pager's links by name."""
    response = app.test_client().get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    links = {name: href.replace("&amp;", "&") for name, href in _LINK.findall(html)}
    return [int(i) for i in _ROW.findall(html)], links


def test_newest_first_by_pages_with_keyset_links(app: Flask) -> None:
    ids = add_many(app, 2 * PAGE_SIZE + 20)
    newest_first = sorted(ids, reverse=True)
    first, links = page(app)
    assert first == newest_first[:PAGE_SIZE]
    assert set(links) == {"older"}
    assert links["older"] == f"/taches/?before={first[-1]}"
    second, links = page(app, links["older"])
    assert second == newest_first[PAGE_SIZE : 2 * PAGE_SIZE]
    assert set(links) == {"newest", "newer", "older"}
    third, links = page(app, links["older"])
    assert third == newest_first[2 * PAGE_SIZE :]
    assert "older" not in links
    back, links = page(app, links["newer"])
    assert back == second
    back, links = page(app, links["newer"])
    assert back == first
    assert "newer" not in links


def test_rows_are_live_status_elements(app: Flask) -> None:
    tache_id = make(app, status="RUNNING", heartbeat_at=utcnow(), started_at=utcnow())
    html = app.test_client().get("/taches/").get_data(as_text=True)
    assert f'<a href="/taches/{tache_id}">#{tache_id}</a>' in html
    # The row is the live element: its cells are replaced as the task moves on.
    assert f'<tr class="tache tache-row" data-id="{tache_id}" data-fragment="row">' in html
    assert (
        f'<td class="tache-row__status" data-label="Status"><div class="tache-status '
        f'tache-status--running" data-tache-id="{tache_id}" data-status="RUNNING"'
    ) in html
    assert '<script src="/taches/static/status.js" data-batch-url="/taches/status"' in html
    assert '<link rel="stylesheet" href="/taches/static/taches.css">' in html


def test_filters(app: Flask) -> None:
    done = make(app, status="COMPLETED", signature="export", queue="slow", owner="alice")
    failed = make(app, status="FAILED", signature="export", owner="bob")
    other = make(app, method="tests.tasks:slow", queue="slow")
    admin = as_user("root", admin=True)
    assert page(app, "/taches/?status=COMPLETED", **admin)[0] == [done]
    assert page(app, "/taches/?status=COMPLETED&status=FAILED", **admin)[0] == [failed, done]
    assert page(app, "/taches/?status=completed,failed", **admin)[0] == [failed, done]
    assert page(app, "/taches/?signature=export", **admin)[0] == [failed, done]
    assert page(app, "/taches/?queue=slow", **admin)[0] == [other, done]
    assert page(app, "/taches/?method=tests.tasks:slow", **admin)[0] == [other]
    assert page(app, "/taches/?owner=bob", **admin)[0] == [failed]
    assert page(app, "/taches/?queue=slow&status=TO_RUN", **admin)[0] == [other]
    assert page(app, "/taches/?signature=none", **admin)[0] == []


def test_filters_are_kept_in_the_pager_and_the_form(app: Flask) -> None:
    add_many(app, PAGE_SIZE + 5, queue="q1")
    ids, links = page(app, "/taches/?queue=q1&status=TO_RUN")
    assert len(ids) == PAGE_SIZE
    older = urlsplit(links["older"])
    assert older.path == "/taches/"
    assert parse_qs(older.query) == {
        "queue": ["q1"],
        "status": ["TO_RUN"],
        "before": [str(ids[-1])],
    }
    html = app.test_client().get("/taches/?queue=q1&status=TO_RUN").get_data(as_text=True)
    assert '<input type="search" name="queue" value="q1">' in html
    assert '<option value="TO_RUN" selected>' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=DONE", "unknown status 'DONE'; use one of WAITING, TO_RUN, RUNNING,"),
        ("before=abc", "before='abc' is not a task id"),
        ("after=-4", "after='-4' is not a task id"),
    ],
)
def test_bad_filters_are_400(app: Flask, query: str, message: str) -> None:
    response = app.test_client().get(f"/taches/?{query}")
    assert response.status_code == 400
    assert message in unescape(response.get_data(as_text=True))


def test_non_admins_see_their_tasks_and_shared_ones(app: Flask) -> None:
    alice = make(app, owner="alice")
    bob = make(app, owner="bob")
    shared = make(app)
    assert page(app, **as_user("bob"))[0] == [shared, bob]
    assert page(app, **as_user(None))[0] == [shared]
    assert page(app, **as_user("root", admin=True))[0] == [shared, bob, alice]
    assert page(app, "/taches/?owner=alice", **as_user("bob"))[0] == []
    assert page(app, "/taches/?owner=bob", **as_user("bob"))[0] == [bob]


def test_a_custom_rule_decides_row_by_row(app: Flask) -> None:
    app.config["TACHES_AUTHORIZE"] = lambda tache, action: tache.queue == "public"
    public = make(app, queue="public", owner="alice")
    make(app, owner="bob")
    assert page(app, **as_user("bob"))[0] == [public]


def test_empty_page_past_the_end_offers_the_way_back(app: Flask) -> None:
    make(app)
    ids, links = page(app, "/taches/?before=1")
    assert ids == []
    assert links == {"newest": "/taches/", "newer": "/taches/"}
    html = app.test_client().get("/taches/?before=1").get_data(as_text=True)
    assert "No task matches." in html


def test_dashboard_interrupts_a_task_whose_heartbeat_stopped(app: Flask) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    tache_id = make(app, status="RUNNING", started_at=long_ago, heartbeat_at=long_ago, attempts=1)
    alive = make(app, status="RUNNING", started_at=long_ago, heartbeat_at=utcnow(), attempts=1)
    page(app)
    dead, living = read(app, tache_id), read(app, alive)
    assert dead is not None and dead.status == Status.INTERRUPTED
    assert living is not None and living.status == Status.RUNNING


# -- how it reads: no OFFSET, no COUNT, no sort of the whole table --------------------


@pytest.mark.parametrize(
    ("query", "user"),
    [
        ("", "admin"),
        ("?before=3", "admin"),
        ("?after=3", "admin"),
        ("?status=COMPLETED", "admin"),
        ("?status=COMPLETED&status=FAILED&before=9", "admin"),
        ("?owner=alice", "admin"),
        ("?signature=s", "admin"),
        ("", "bob"),
        ("?status=FAILED&before=9", "bob"),
        ("?signature=s", "bob"),
    ],
)
def test_dashboard_queries_walk_an_index_in_order(app: Flask, query: str, user: str) -> None:
    make(app, owner="alice", status="COMPLETED", signature="s")
    make(app, owner="bob", status="FAILED")
    make(app)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        # The tasks' own queries (not those of taches_managers, the managers panel).
        if re.search(r"FROM taches\b(?!_)", statement) and "ORDER BY" in statement:
            statements.append((statement, params))

    headers = as_user("root", admin=True) if user == "admin" else as_user(user)
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        page(app, f"/taches/{query}", **headers)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements
    for statement, params in statements:
        upper = statement.upper()
        assert "COUNT(" not in upper
        values = list(params.values()) if isinstance(params, dict) else list(params)
        assert PAGE_SIZE + 1 in values
        if engine.dialect.name == "sqlite":
            # SQLite's compiler always writes "LIMIT ? OFFSET ?": the offset must be 0
            assert statement.endswith("LIMIT ? OFFSET ?")
            assert tuple(params[-2:]) == (PAGE_SIZE + 1, 0)
        else:
            assert "OFFSET" not in upper
    if engine.dialect.name == "sqlite":  # the plan's wording is SQLite's
        with engine.connect() as conn:
            for statement, params in statements:
                plan = " ; ".join(
                    row[-1]
                    for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                )
                assert "TEMP B-TREE" not in plan, (query, statement, plan)


def test_the_dashboard_reads_its_rows_once(app: Flask) -> None:
    """Its figures are read before its rows: their reads would expire the rows, each read again."""
    add_many(app, PAGE_SIZE + 5)
    with app.app_context():
        now = utcnow()
        db.session.execute(
            update(taches_table).values(status="COMPLETED", started_at=now, ended_at=now)
        )
        db.session.commit()
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if re.search(r"FROM taches\b(?!_)", statement):
            statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        shown, _ = page(app, "/taches/", **as_user("root", admin=True))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(shown) == PAGE_SIZE
    by_id = [s for s in statements if re.search(r"WHERE taches\.id = ", s)]
    assert by_id == [], by_id[:1]
    assert len(statements) < 12, statements  # counts, chart, bulk counts, the page: not a row each


@pytest.mark.parametrize("user", [None, "bob"])
def test_a_viewers_backlog_is_read_on_the_status_index(app: Flask, user: str | None) -> None:
    """Not on the owner index: a viewer's shared tasks are every task cron ever added."""
    make(app, queue="mail")
    make(app, status="COMPLETED")
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if "GROUP BY taches.queue" in statement:
            statements.append((statement, params))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        html = app.test_client().get("/taches/", headers=as_user(user)).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert 'data-queue="mail" data-count="1"' in html
    assert len(statements) == 1
    if engine.dialect.name == "sqlite":  # the plan's wording is SQLite's
        with engine.connect() as conn:
            statement, params = statements[0]
            plan = " ; ".join(
                row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            )
        assert "ix_taches_owner" not in plan and plan.count("(status=?)") == 3, plan


def test_the_chart_cuts_minutes_alike_on_every_database(app: Flask) -> None:
    """Ended on a minute's first instant: in that minute; a microsecond before: the one before."""
    now = utcnow().replace(second=30, microsecond=0)
    minute = now.replace(second=0)
    ends = {
        "COMPLETED": [minute, minute, minute - timedelta(microseconds=1)],
        "FAILED": [minute - timedelta(minutes=5, seconds=-59, microseconds=-999_999)],
        "INTERRUPTED": [minute - timedelta(minutes=59)],
    }
    for status, times in ends.items():
        for ended in times:
            make(app, status=status, started_at=ended, ended_at=ended, attempts=1)
    make(app, status="COMPLETED", started_at=now, ended_at=minute - timedelta(minutes=60))
    make(app, status="CANCELLED", started_at=now, ended_at=minute)  # not charted
    with app.test_request_context("/taches/", headers=as_user("root", admin=True)):
        minutes = figures.last_hour([], now=now)
    assert len(minutes) == figures.CHART_MINUTES
    assert minutes[-1].start == minute
    by_start = {m.start: (m.completed, m.failed) for m in minutes if m.completed or m.failed}
    assert by_start == {
        minute: (2, 0),
        minute - timedelta(minutes=1): (1, 0),
        minute - timedelta(minutes=5): (0, 1),
        minute - timedelta(minutes=59): (0, 1),
    }


# -- cancel all ----------------------------------------------------------------------------


@pytest.mark.taches_config(TACHES_SHARED_ACTIONS=True, **USERS)  # bob may act on shared tasks
def test_cancel_all_cancels_what_waits_and_stops_what_runs(app: Flask) -> None:
    now = utcnow()
    waiting = make(app, status="WAITING")
    queued = make(app, owner="bob")
    running = make(app, status="RUNNING", started_at=now, heartbeat_at=now, attempts=1)
    done = make(app, status="COMPLETED")
    foreign = make(app, owner="alice")
    client = app.test_client()
    bob = as_user("bob")
    token = csrf_token(client, **bob)
    response = client.post(
        "/taches/cancel-all",
        data={"csrf_token": token},
        headers={**bob, "Referer": "http://localhost/taches/?status=TO_RUN"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "http://localhost/taches/?status=TO_RUN"
    states = {i: read(app, i) for i in (waiting, queued, running, done, foreign)}
    assert {i: t.status for i, t in states.items() if t is not None} == {
        waiting: "CANCELLED",
        queued: "CANCELLED",
        running: "RUNNING",
        done: "COMPLETED",
        foreign: "TO_RUN",
    }
    stopping = states[running]
    assert stopping is not None and stopping.cancel_requested_by == "bob"


@pytest.mark.taches_config(TACHES_SHARED_ACTIONS=True, **USERS)  # anonymous acts on shared tasks
def test_cancel_all_by_fetch_lists_what_it_did(app: Flask) -> None:
    first = make(app)
    second = make(app)
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/taches/cancel-all", headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 200
    assert response.get_json()["cancelled"] == [first, second]
    assert response.get_json()["report"]["done"] == [first, second]
    again = client.post("/taches/cancel-all", headers={"X-CSRFToken": token, **JSON})
    assert again.get_json()["cancelled"] == []


def test_cancel_all_is_offered_only_to_who_may_cancel_something(app: Flask) -> None:
    make(app)
    client = app.test_client()
    offered = 'data-bulk="cancel"'
    assert offered not in client.get("/taches/").get_data(as_text=True)  # anonymous
    for user in (as_user("bob"), as_user("root", admin=True)):
        assert offered in client.get("/taches/", headers=user).get_data(as_text=True)
    app.config["TACHES_SHARED_ACTIONS"] = True
    assert offered in client.get("/taches/").get_data(as_text=True)


def test_cancel_all_needs_the_csrf_token(app: Flask) -> None:
    tache_id = make(app)
    client = app.test_client()
    csrf_token(client)
    response = client.post("/taches/cancel-all", headers=JSON)
    assert response.status_code == 400
    tache = read(app, tache_id)
    assert tache is not None and tache.status == Status.TO_RUN


@pytest.mark.taches_config(TACHES_LOCALE="fr", **USERS)
def test_dashboard_in_french(app: Flask) -> None:
    make(app, status="CANCELLED")
    # as a user: an anonymous one is not offered "cancel all" (shared tasks are the admins')
    html = app.test_client().get("/taches/", headers=as_user("bob")).get_data(as_text=True)
    assert '<span class="tache-badge tache-badge--cancelled">Annulé</span>' in html
    assert "Annuler l&#39;attente et les en-cours" in html
    assert '<option value="WAITING">En attente de la tâche précédente</option>' in html
