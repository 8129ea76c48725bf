"""The batch route status.js polls: ids, signatures, limits, visibility, queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from tests.app import db
from tests.web import SECRET, USERS, as_user, make

pytestmark = pytest.mark.taches_config(**USERS)


def batch_get(app: Flask, query: str, **headers: str) -> Any:
    response = app.test_client().get(f"/taches/status?{query}", headers=headers)
    return response


@contextmanager
def count_queries(app: Flask) -> Iterator[list[str]]:
    """The SELECTs the app's engine runs inside the block."""
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_ids_and_signatures_in_one_answer(app: Flask) -> None:
    a = make(app)
    b = make(app, status="COMPLETED")
    make(app, signature="export", status="FAILED")
    latest = make(app, signature="export", status="RUNNING")
    response = batch_get(app, f"ids={a},{b}&signatures=export,nothing-like-it")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert [t["id"] for t in data["taches"]] == [a, b, latest]
    assert data["missing"] == {"ids": [], "signatures": ["nothing-like-it"]}
    first = data["taches"][0]
    assert first["status"] == "TO_RUN" and first["finished"] is False
    assert first["label"] == "Queued"
    assert first["status_html"].startswith(
        f'<div class="tache-status tache-status--to_run" data-tache-id="{a}"'
    )
    assert first["result_html"].startswith('<div class="tache-result')
    assert data["taches"][1]["finished"] is True
    assert data["taches"][2]["signature"] == "export"
    assert "parametres_caches" not in first


@pytest.mark.taches_config(TACHES_SHARED_ACTIONS=True, **USERS)  # its two buttons are offered
def test_status_html_is_exactly_the_fragment(app: Flask) -> None:
    tache_id = make(app, status="FAILED", progress={"step": 1, "max": 3})
    client = app.test_client()
    fragment = client.get(f"/taches/{tache_id}/status").get_data(as_text=True)
    # the CSRF token differs per request; compare with it blanked out
    batch = client.get(f"/taches/status?ids={tache_id}").get_json()["taches"][0]["status_html"]
    blank = lambda html: html.split('name="csrf_token" value="')[0]  # noqa: E731
    assert blank(batch) == blank(fragment)
    assert batch.count("<form") == fragment.count("<form") == 2


def test_post_with_a_json_body(app: Flask) -> None:
    tache_id = make(app, signature="s1")
    client = app.test_client()
    response = client.post("/taches/status", json={"ids": [tache_id, "77"], "signatures": ["s1"]})
    assert response.status_code == 200
    data = response.get_json()
    assert [t["id"] for t in data["taches"]] == [tache_id]  # the signature's task only once
    assert data["missing"] == {"ids": [77], "signatures": []}


def test_post_with_form_fields(app: Flask) -> None:
    tache_id = make(app, signature="s1")
    response = app.test_client().post(
        "/taches/status", data={"ids": f"{tache_id}", "signatures": ["s1", "s2"]}
    )
    data = response.get_json()
    assert [t["id"] for t in data["taches"]] == [tache_id]
    assert data["missing"]["signatures"] == ["s2"]


def test_repeated_query_arguments_and_duplicates(app: Flask) -> None:
    tache_id = make(app)
    data = batch_get(app, f"ids={tache_id}&ids={tache_id},{tache_id}").get_json()
    assert [t["id"] for t in data["taches"]] == [tache_id]


def test_empty_batch(app: Flask) -> None:
    data = batch_get(app, "").get_json()
    assert data == {"taches": [], "missing": {"ids": [], "signatures": []}}


@pytest.mark.parametrize("ids", ["1,abc", "1.5", "0x10", "1e3", "true", "²", "--1"])
def test_ids_that_are_not_integers_are_400(app: Flask, ids: str) -> None:
    response = batch_get(app, f"ids={ids}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "is not an integer" in error and "\n" not in error


@pytest.mark.parametrize(
    "body",
    [
        {"ids": ["x"]},
        {"ids": [True]},
        {"ids": [1.5]},
        {"ids": "1,2"},
        {"signatures": [3]},
        [1, 2],
    ],
)
def test_bad_json_bodies_are_400(app: Flask, body: Any) -> None:
    response = app.test_client().post("/taches/status", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_a_thousand_ids_is_400(app: Flask) -> None:
    ids = ",".join(str(i) for i in range(1, 1001))
    response = batch_get(app, f"ids={ids}")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "1000 ids + 0 signatures: at most 200 (TACHES_BATCH_MAX) in one request"
    }
    posted = app.test_client().post("/taches/status", json={"ids": list(range(1, 1001))})
    assert posted.status_code == 400


@pytest.mark.taches_config(TACHES_BATCH_MAX=3, **USERS)
def test_the_cap_counts_ids_and_signatures_together(app: Flask) -> None:
    assert batch_get(app, "ids=1,2&signatures=a").status_code == 200
    response = batch_get(app, "ids=1,2&signatures=a,b")
    assert response.status_code == 400
    assert "at most 3" in response.get_json()["error"]


def test_unknown_ids_and_ids_beyond_any_database_are_missing(app: Flask) -> None:
    data = batch_get(app, f"ids=5,-3,0,{2**70}").get_json()
    assert data["taches"] == []
    assert data["missing"]["ids"] == [5, -3, 0, 2**70]


def test_tasks_of_others_count_as_missing(app: Flask) -> None:
    mine = make(app, owner="bob")
    theirs = make(app, owner="alice")
    shared = make(app)
    make(app, owner="alice", signature="report")
    own = make(app, owner="bob", signature="own")
    query = f"ids={mine},{theirs},{shared}&signatures=report,own"
    data = batch_get(app, query, **as_user("bob")).get_json()
    assert [t["id"] for t in data["taches"]] == [mine, shared, own]
    assert data["missing"] == {"ids": [theirs], "signatures": ["report"]}
    admin = batch_get(app, query, **as_user("root", admin=True)).get_json()
    assert admin["missing"] == {"ids": [], "signatures": []}


def test_no_secret_in_the_batch(app: Flask) -> None:
    tache_id = make(app, signature="s")
    body = batch_get(app, f"ids={tache_id}&signatures=s").get_data(as_text=True)
    assert SECRET not in body and "parametres_caches" not in body


def test_the_batch_leaves_the_full_log_to_status_json(app: Flask) -> None:
    logs = [{"level": "info", "message": f"line {n}", "details": None, "at": "x"} for n in range(3)]
    tache_id = make(app, logs=logs)
    entry = batch_get(app, f"ids={tache_id}").get_json()["taches"][0]
    assert "logs" not in entry
    assert 'data-level="info" data-count="3"' in entry["result_html"]  # still summed up
    full = app.test_client().get(f"/taches/{tache_id}/status.json").get_json()
    assert [e["message"] for e in full["logs"]] == ["line 0", "line 1", "line 2"]


# -- on every database ------------------------------------------------------------------


def test_signatures_resolve_to_their_latest_task_on_every_database(any_db_app: Flask) -> None:
    app = any_db_app
    older = make(app, signature="import", status="COMPLETED")
    newest = make(app, signature="import", status="TO_RUN")
    other = make(app, signature="export")
    plain = make(app)
    data = batch_get(app, f"ids={plain},{older}&signatures=import,export,none").get_json()
    assert [t["id"] for t in data["taches"]] == [plain, older, newest, other]
    assert data["missing"] == {"ids": [], "signatures": ["none"]}


def test_the_batch_reads_in_two_queries_whatever_its_size(any_db_app: Flask) -> None:
    app = any_db_app
    ids = [make(app, signature=f"sig-{i}") for i in range(30)]
    signatures = [f"sig-{i}" for i in range(30)] + ["unknown"]
    body = {"ids": ids, "signatures": signatures}
    client = app.test_client()
    with count_queries(app) as statements:
        response = client.post("/taches/status", json=body)
    assert response.status_code == 200
    data = response.get_json()
    assert sorted(t["id"] for t in data["taches"]) == sorted(ids)
    assert data["missing"]["signatures"] == ["unknown"]
    assert len(statements) == 2, statements
