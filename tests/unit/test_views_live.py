"""The live pages' routes with the test client: the batch's extras, bulk actions, panels.

The batch route's ``pages``, ``rows`` and ``newer`` (a task page's parts, dashboard
rows, the dashboard's new rows); ``POST /cancel-all``, ``/restart-failed`` and
``/delete-finished`` on exactly the posted filter; the dashboard's counts, chart,
prefix search and columns; the blueprint mounted by the application itself.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, abort, request, url_for

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.service import figures
from flask_taches.web import templating
from tests.app import taches
from tests.web import JSON, USERS, as_user, csrf_token, make, read

pytestmark = pytest.mark.taches_config(**USERS)

ADMIN = as_user("root", admin=True)
NOW = utcnow()


def log(message: str, level: str = "info") -> dict[str, Any]:
    return {"level": level, "message": message, "at": NOW.isoformat()}


def batch(app: Flask, body: Any, **headers: str) -> Any:
    return app.test_client().post("/taches/status", json=body, headers=headers)


def finished(app: Flask, status: str, **fields: Any) -> int:
    return make(app, status=status, started_at=NOW, ended_at=NOW, attempts=1, **fields)


# -- the batch's extras ------------------------------------------------------------------


def test_a_task_page_gets_only_the_log_entries_it_does_not_show(app: Flask) -> None:
    tache_id = make(app, status="RUNNING", started_at=NOW, logs=[log("one"), log("two"), log("3")])
    response = batch(app, {"ids": [tache_id], "pages": [{"id": tache_id, "logs": 1}]})
    assert response.status_code == 200
    parts = response.get_json()["pages"][str(tache_id)]
    assert parts["logs"] == 3 and parts["logs_reset"] is False
    assert parts["logs_html"].count('<li class="tache-log') == 2
    assert "two" in parts["logs_html"] and "one" not in parts["logs_html"]
    assert 'data-tache-part="fields"' in parts["fields_html"]
    assert 'data-tache-part="result"' in parts["result_html"]
    # More shown than there are (a restart rewrote the log): start again from none.
    again = batch(app, {"ids": [tache_id], "pages": [{"id": tache_id, "logs": 9}]}).get_json()
    assert again["pages"][str(tache_id)]["logs_reset"] is True
    assert again["pages"][str(tache_id)]["logs_html"].count("<li") == 3


def test_a_page_of_a_task_the_user_may_not_see_gets_nothing(app: Flask) -> None:
    tache_id = make(app, owner="alice", logs=[log("private")])
    reply = batch(app, {"pages": [{"id": tache_id, "logs": 0}]}, **as_user("bob")).get_json()
    assert reply["pages"] == {}
    assert reply["missing"]["ids"] == [tache_id]


def test_rows_come_back_as_cells_for_the_ids_asked(app: Flask) -> None:
    first, second = make(app), finished(app, "FAILED", logs=[log("it broke", "error")])
    reply = batch(app, {"ids": [first, second], "rows": [second]}).get_json()
    by_id = {t["id"]: t for t in reply["taches"]}
    assert "row_html" not in by_id[first]
    assert by_id[second]["row_html"].startswith('<td class="tache-row__id"')
    assert "it broke" in by_id[second]["row_html"]  # the reason column


def test_newer_rows_are_the_filters_own_newest_first(app: Flask) -> None:
    before = make(app, queue="mail")
    mine = [make(app, queue="mail"), make(app, queue="other"), make(app, queue="mail")]
    reply = batch(app, {"newer": {"after": before, "query": "queue=mail"}}).get_json()
    ids = [
        int(i)
        for i in re.findall(r'<tr class="tache tache-row" data-id="(\d+)"', reply["newer"]["html"])
    ]
    assert ids == [mine[2], mine[0]]
    assert reply["newer"]["after"] == mine[2]
    nothing = batch(app, {"newer": {"after": mine[2], "query": ""}}).get_json()
    assert nothing["newer"] == {"html": "", "after": mine[2]}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"pages": {"id": 1}}, '"pages" must be a list'),
        ({"pages": [1]}, 'each of "pages" must be an object'),
        ({"pages": [{"id": "x"}]}, "is not an integer"),
        ({"pages": [{"id": 1, "logs": -1}]}, '"logs" must be a whole number'),
        ({"pages": [{"id": 1, "logs": True}]}, '"logs" must be a whole number'),
        ({"pages": [{"id": i} for i in range(11)]}, "at most 10"),
        ({"rows": "1,2"}, '"rows" must be a list'),
        ({"rows": [[1]]}, "is not an integer"),
        ({"newer": 5}, '"newer" must be an object'),
        ({"newer": {"after": "x"}}, '"after" must be a whole number'),
        ({"newer": {"query": 7}}, '"newer.query" must be a query string'),
        ({"newer": {"query": "q" * 2001}}, "at most 2000"),
        ({"newer": {"query": "queue=a%00b"}}, "newer.query queue"),
        ({"newer": {"query": "status=BOGUS"}}, "unknown status 'BOGUS'"),
    ],
)
def test_bad_extras_are_refused_in_one_line(app: Flask, body: Any, error: str) -> None:
    response = batch(app, body)
    assert response.status_code == 400
    message = response.get_json()["error"]
    assert error in message and "\n" not in message


# -- bulk actions on exactly the filter ----------------------------------------------------


def post(app: Flask, path: str, data: dict[str, Any], **headers: str) -> Any:
    client = app.test_client()
    token = csrf_token(client, **headers)
    return client.post(path, data={**data, "csrf_token": token}, headers={**JSON, **headers})


def test_cancel_all_on_a_queue_leaves_the_other_queues_alone(app: Flask) -> None:
    reports = [make(app, queue="reports"), make(app, queue="reports", status="WAITING")]
    mail = make(app, queue="mail")
    response = post(app, "/taches/cancel-all", {"queue": "reports"}, **ADMIN)
    assert response.status_code == 200
    report = response.get_json()["report"]
    assert report["done"] == reports and report["too_late"] == []
    assert [read(app, i).status for i in reports] == ["CANCELLED", "CANCELLED"]  # type: ignore[union-attr]
    assert read(app, mail).status == "TO_RUN"  # type: ignore[union-attr]


def test_cancel_all_on_a_finished_status_cancels_nothing(app: Flask) -> None:
    queued = make(app)
    response = post(app, "/taches/cancel-all", {"status": "COMPLETED"}, **ADMIN)
    assert response.get_json()["report"]["done"] == []
    assert read(app, queued).status == "TO_RUN"  # type: ignore[union-attr]


def test_restart_failed_restarts_only_the_failed_ones_the_filter_selects(app: Flask) -> None:
    failed = finished(app, "FAILED", method="tests.tasks:raises")
    other = finished(app, "FAILED", method="tests.tasks:add")
    cancelled = finished(app, "CANCELLED", method="tests.tasks:raises")
    response = post(app, "/taches/restart-failed", {"method": "tests.tasks:ra"}, **ADMIN)
    assert response.get_json()["report"]["done"] == [failed]
    assert read(app, failed).status == "TO_RUN"  # type: ignore[union-attr]
    assert read(app, other).status == "FAILED"  # type: ignore[union-attr]
    assert read(app, cancelled).status == "CANCELLED"  # type: ignore[union-attr]


def test_delete_finished_deletes_only_the_finished_ones_of_the_owner(app: Flask) -> None:
    done = finished(app, "COMPLETED", owner="bob")
    queued = make(app, owner="bob")
    alices = finished(app, "COMPLETED", owner="alice")
    response = post(app, "/taches/delete-finished", {"owner": "bob"}, **ADMIN)
    assert response.get_json()["report"]["done"] == [done]
    assert read(app, done) is None
    assert read(app, queued) is not None and read(app, alices) is not None


def test_a_bulk_action_acts_only_on_what_the_user_may_act_on(app: Flask) -> None:
    own = finished(app, "FAILED", owner="bob")
    shared = finished(app, "FAILED")
    alices = finished(app, "FAILED", owner="alice")
    response = post(app, "/taches/restart-failed", {}, **as_user("bob"))
    assert response.get_json()["report"]["done"] == [own]
    assert read(app, shared).status == read(app, alices).status == "FAILED"  # type: ignore[union-attr]


def test_a_plain_form_is_redirected_with_the_report_flashed(app: Flask) -> None:
    make(app, queue="reports")
    client = app.test_client()
    token = csrf_token(client, **ADMIN)
    response = client.post(
        "/taches/cancel-all",
        data={"queue": "reports", "csrf_token": token},
        headers={**ADMIN, "Referer": "http://localhost/taches/?queue=reports"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "http://localhost/taches/?queue=reports"
    page = client.get("/taches/?queue=reports", headers=ADMIN).get_data(as_text=True)
    assert '<li class="taches-report">1 cancelled</li>' in page


@pytest.mark.parametrize(
    "path", ["/taches/cancel-all", "/taches/restart-failed", "/taches/delete-finished"]
)
def test_bulk_routes_refuse_bad_input(app: Flask, path: str) -> None:
    kept = finished(app, "FAILED")
    bad = post(app, path, {"status": "NOPE"}, **ADMIN)
    assert bad.status_code == 400
    assert bad.get_json()["error"].startswith("unknown status 'NOPE'")
    no_token = app.test_client().post(path, headers={**JSON, **ADMIN})
    assert no_token.status_code == 400 and "CSRF" in no_token.get_json()["error"]
    assert app.test_client().get(path).status_code == 405
    assert read(app, kept).status == "FAILED"  # type: ignore[union-attr]


# -- the dashboard's panels and columns ------------------------------------------------------


def dashboard(app: Flask, query: str = "", **headers: str) -> str:
    response = app.test_client().get(f"/taches/{query}", headers=headers or ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_data(as_text=True))


def facet(html: str, attribute: str, value: str) -> int:
    match = re.search(rf'{attribute}="{re.escape(value)}" data-count="(\d+)"', html)
    assert match, (attribute, value)
    return int(match.group(1))


def test_counts_per_status_and_queue_each_under_the_other_filters(app: Flask) -> None:
    finished(app, "COMPLETED", queue="mail")
    finished(app, "FAILED", queue="mail", logs=[log("smtp down", "error")])
    make(app, queue="mail")
    make(app, queue="reports")
    make(app, queue="reports", status="RUNNING", started_at=NOW, heartbeat_at=utcnow())
    html = dashboard(app, "?queue=mail")
    assert facet(html, "data-status", "COMPLETED") == 1
    assert facet(html, "data-status", "FAILED") == 1
    assert facet(html, "data-status", "TO_RUN") == 1
    assert facet(html, "data-status", "RUNNING") == 0  # the running one is in "reports"
    # Per queue: its backlog (waiting and running), in every queue.
    assert facet(html, "data-queue", "mail") == 1
    assert facet(html, "data-queue", "reports") == 2
    assert 'href="/taches/?status=FAILED&amp;queue=mail"' in html
    assert "smtp down" in html  # the reason column


def test_counts_stop_at_their_cap(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figures, "COUNT_CAP", 2)
    for _ in range(4):
        finished(app, "FAILED")
    make(app)
    html = dashboard(app)
    assert facet(html, "data-status", "FAILED") == 3  # counted up to the cap and one
    assert '<span class="taches-facet__count">2+</span>' in html
    assert facet(html, "data-status", "TO_RUN") == 1
    assert "Restart failed (2+)" in html


def test_the_chart_counts_the_last_hour_per_minute(app: Flask) -> None:
    finished(app, "COMPLETED")
    finished(app, "COMPLETED")
    finished(app, "INTERRUPTED")
    make(app, status="COMPLETED", ended_at=NOW - timedelta(hours=2))  # before the hour
    html = dashboard(app)
    assert 'data-completed="2" data-failed="1"' in html
    assert html.count('class="taches-chart__completed"') == 1  # one minute had them all
    assert "2 completed, 1 failed in the last hour" in html


def test_no_figures_under_an_authorize_hook(app: Flask) -> None:
    make(app)
    taches.hooks.authorize = lambda tache, action: True
    try:
        html = dashboard(app, **as_user("bob"))
    finally:
        taches.hooks.authorize = None
    assert "taches-counts" not in html and "taches-chart" not in html
    assert 'data-count="?"' in html  # the bulk buttons cannot count either


def test_bulk_buttons_confirm_with_the_count_and_post_the_filter(app: Flask) -> None:
    make(app, queue="mail")
    make(app, queue="mail")
    finished(app, "FAILED", queue="mail")
    make(app, queue="other")
    html = dashboard(app, "?queue=mail")
    assert 'data-confirm="Cancel the 2 waiting and running tasks this filter selects?"' in html
    assert 'data-confirm="Restart the 1 failed tasks this filter selects?"' in html
    assert '<input type="hidden" name="queue" value="mail">' in html
    assert "Delete finished (1)" in html


def test_method_and_signature_match_by_prefix_and_literally(app: Flask) -> None:
    hit = make(app, signature="export-2026", method="tests.tasks:add")
    make(app, signature="exports", method="tests.tasks:raises")
    make(app, signature="ex%port", method="tests.tasks:add")
    ids = [
        int(i)
        for i in re.findall(
            r'<tr class="tache tache-row" data-id="(\d+)"',
            dashboard(app, "?signature=export-&method=tests.tasks:a"),
        )
    ]
    assert ids == [hit]
    literal = dashboard(app, "?signature=ex%25")
    assert literal.count('<tr class="tache tache-row"') == 1  # "%" is not a wildcard


def test_row_columns_run_at_attempts_duration(app: Flask) -> None:
    later = make(app, run_at=utcnow() + timedelta(hours=3, seconds=10))
    done = make(
        app, status="COMPLETED", started_at=NOW - timedelta(seconds=40), ended_at=NOW, attempts=2
    )
    html = dashboard(app)
    row = html[html.index(f'data-id="{later}" data-fragment') :]
    assert '<td class="tache-row__run-at" data-label="Not before">in 3 h 00</td>' in row
    row = html[html.index(f'data-id="{done}" data-fragment') :]
    assert '<td class="tache-row__attempts" data-label="Attempts">2/1</td>' in row
    assert '<td class="tache-row__duration" data-label="Duration">40 s</td>' in row


@pytest.mark.taches_config(TACHES_LOCALE="fr", **USERS)
def test_french_labels_say_file_d_attente_and_fin(app: Flask) -> None:
    tache_id = finished(app, "COMPLETED")
    html = app.test_client().get(f"/taches/{tache_id}", headers=ADMIN).get_data(as_text=True)
    assert "<dt>File d&#39;attente</dt>" in html and "<dt>Fin</dt>" in html
    assert ">Terminé</span>" in html  # the badge, not the end date's label


# -- fragments ------------------------------------------------------------------------------


def test_a_failed_fragment_says_why_escaped(app: Flask) -> None:
    tache_id = finished(app, "FAILED", logs=[log("step"), log("<b>boom</b>", "error"), log("x")])
    html = app.test_client().get(f"/taches/{tache_id}/status").get_data(as_text=True)
    assert "Reason:</span> &lt;b&gt;boom&lt;/b&gt;</p>" in html


def test_render_tache_with_the_result(app: Flask) -> None:
    tache_id = finished(app, "COMPLETED", result={"rows": 12})
    with app.test_request_context():
        markup = templating.render_tache(tache_id, result=True)
    assert f'<span class="tache" data-id="{tache_id}" data-result="1">' in markup
    assert 'class="tache-result tache-result--completed"' in markup


def test_delete_confirms_the_file_only_when_there_is_one(app: Flask) -> None:
    plain = finished(app, "COMPLETED")
    filed = finished(app, "COMPLETED", fichier="report.csv")
    client = app.test_client()
    assert f"Delete task {plain}?" in client.get(f"/taches/{plain}/status", headers=ADMIN).get_data(
        as_text=True
    )
    html = client.get(f"/taches/{filed}/status", headers=ADMIN).get_data(as_text=True)
    assert f"Delete task {filed} and its attached file?" in html


# -- the blueprint mounted by the application ------------------------------------------------


@pytest.mark.taches_config(TACHES_REGISTER_BLUEPRINT=False, **USERS)
def test_the_app_mounts_the_blueprint_behind_its_own_guard(app: Flask) -> None:
    assert "taches" not in app.blueprints
    app.register_blueprint(taches.blueprint, url_prefix="/admin/tasks")

    @app.before_request
    def admins_only() -> None:
        if (
            request.blueprint == "taches"
            and request.endpoint not in LIVE
            and not request.headers.get("X-Admin")
        ):
            abort(403)

    @app.get("/public")
    def public() -> str:
        return str(templating.render_tache(tache_id)) + str(templating.taches_script())

    LIVE = {"taches.static", "taches.batch_status"}
    tache_id = make(app)
    client = app.test_client()
    page = client.get("/public").get_data(as_text=True)
    assert 'src="/admin/tasks/static/status.js" data-batch-url="/admin/tasks/status"' in page
    for asset in ("status.js", "taches.css"):
        with client.get(f"/admin/tasks/static/{asset}") as response:
            assert response.status_code == 200
    assert client.post("/admin/tasks/status", json={"ids": [tache_id]}).status_code == 200
    assert client.get("/admin/tasks/").status_code == 403
    assert client.get("/taches/").status_code == 404
    assert client.get("/admin/tasks/", headers=ADMIN).status_code == 200
    with app.test_request_context():
        assert url_for("taches.index") == "/admin/tasks/"
        assert url_for("taches.tache", tache_id=3) == "/admin/tasks/3"
        assert url_for("taches.restart_failed") == "/admin/tasks/restart-failed"
    assert Status.TO_RUN.value == read(app, tache_id).status  # type: ignore[union-attr]
