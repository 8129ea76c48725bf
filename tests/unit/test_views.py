"""The blueprint's routes for one task: fragment, JSON, actions, CSRF, file, page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from jinja2 import FileSystemLoader

from flask_taches import Status
from flask_taches.clock import utcnow
from tests.app import db, taches
from tests.web import JSON, METHOD, SECRET, USERS, as_user, csrf_token, make, read

pytestmark = pytest.mark.taches_config(**USERS)

XSS = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


def running(app: Flask, **fields: object) -> int:
    now = utcnow()
    return make(app, status="RUNNING", started_at=now, heartbeat_at=now, attempts=1, **fields)


# -- the status fragment ----------------------------------------------------------------


def test_status_fragment_has_the_root_element_status_js_reads(app: Flask) -> None:
    tache_id = make(app)
    response = app.test_client().get(f"/taches/{tache_id}/status")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.startswith(
        f'<div class="tache-status tache-status--to_run" data-tache-id="{tache_id}" '
        'data-status="TO_RUN" data-finished="0">'
    )
    assert '<span class="tache-badge tache-badge--to_run">Queued</span>' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert "Accept" in response.vary


def test_finished_task_says_so(app: Flask) -> None:
    tache_id = make(app, status="COMPLETED")
    html = app.test_client().get(f"/taches/{tache_id}/status").get_data(as_text=True)
    assert 'data-status="COMPLETED" data-finished="1"' in html
    assert "tache-badge--completed" in html


@pytest.mark.parametrize("headers", [JSON, {"X-Requested-With": "fetch"}])
def test_status_answers_json_when_asked(app: Flask, headers: dict[str, str]) -> None:
    tache_id = make(app, parametres={"n": 3}, signature="sig")
    response = app.test_client().get(f"/taches/{tache_id}/status", headers=headers)
    assert response.status_code == 200
    data = response.get_json()
    assert data["id"] == tache_id
    assert data["status"] == "TO_RUN"
    assert data["finished"] is False
    assert data["label"] == "Queued"
    assert data["parametres"] == {"n": 3}
    assert "parametres_caches" not in data


def test_browser_accept_header_gets_html(app: Flask) -> None:
    tache_id = make(app)
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = app.test_client().get(f"/taches/{tache_id}/status", headers={"Accept": browser})
    assert response.mimetype == "text/html"


def test_status_json_route(app: Flask) -> None:
    tache_id = make(app, status="FAILED")
    response = app.test_client().get(f"/taches/{tache_id}/status.json")
    assert response.status_code == 200
    data = response.get_json()
    assert (data["status"], data["finished"], data["label"]) == ("FAILED", True, "Failed")
    assert "parametres_caches" not in data


@pytest.mark.parametrize("path", ["/taches/{id}/status", "/taches/{id}/status.json"])
def test_unknown_id_is_404_with_a_json_error_for_json(app: Flask, path: str) -> None:
    client = app.test_client()
    response = client.get(path.format(id=4242), headers=JSON)
    assert response.status_code == 404
    assert response.get_json() == {"error": "no task 4242 here"}


def test_unknown_id_is_404_html_for_a_browser(app: Flask) -> None:
    response = app.test_client().get("/taches/4242/status")
    assert response.status_code == 404
    assert "no task 4242 here" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/taches/abc/status", "/taches/1.5/status.json", "/taches/-1", "/taches/x/fichier"]
)
def test_id_that_is_not_a_number_is_404(app: Flask, path: str) -> None:
    assert app.test_client().get(path).status_code == 404


def test_id_too_large_for_any_database_is_404(app: Flask) -> None:
    response = app.test_client().get(f"/taches/{2**70}/status.json")
    assert response.status_code == 404


# -- who sees what ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/taches/{id}/status", "/taches/{id}/status.json", "/taches/{id}", "/taches/{id}/fichier"],
)
def test_another_users_task_answers_404_like_a_missing_one(app: Flask, path: str) -> None:
    tache_id = make(app, owner="alice")
    client = app.test_client()
    foreign = client.get(path.format(id=tache_id), headers=as_user("bob", **JSON))
    missing = client.get(path.format(id=999), headers=as_user("bob", **JSON))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_json()["error"] == f"no task {tache_id} here"
    anonymous = client.get(path.format(id=tache_id))
    assert anonymous.status_code == 404


def test_owner_and_admin_see_the_task_and_shared_tasks_are_for_all(app: Flask) -> None:
    private = make(app, owner="alice")
    shared = make(app)
    client = app.test_client()
    assert client.get(f"/taches/{private}/status", headers=as_user("alice")).status_code == 200
    admin = as_user("root", admin=True)
    assert client.get(f"/taches/{private}/status", headers=admin).status_code == 200
    for headers in (as_user("bob"), as_user(None)):
        assert client.get(f"/taches/{shared}/status", headers=headers).status_code == 200


# -- actions offered by the fragment ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        ("WAITING", ["cancel", "delete"]),
        ("TO_RUN", ["cancel", "delete"]),
        ("RUNNING", ["cancel"]),
        ("COMPLETED", ["delete"]),
        ("FAILED", ["restart", "delete"]),
        ("INTERRUPTED", ["restart", "delete"]),
        ("CANCELLED", ["restart", "delete"]),
    ],
)
def test_fragment_offers_the_actions_of_the_status(
    app: Flask, status: str, offered: list[str]
) -> None:
    tache_id = make(app, status=status, heartbeat_at=utcnow())
    html = app.test_client().get(f"/taches/{tache_id}/status").get_data(as_text=True)
    actions = [a for a in ("cancel", "restart", "delete") if f'data-action="{a}"' in html]
    assert actions == offered
    for action in offered:
        assert (
            f'<form method="post" action="/taches/{tache_id}/{action}" class="tache-action" '
            f'data-action="{action}" data-confirm="' in html
        )
    assert html.count('<input type="hidden" name="csrf_token" value="') == len(offered)


def test_running_task_asked_to_stop_offers_no_second_cancel(app: Flask) -> None:
    tache_id = running(app, cancel_requested_at=utcnow(), cancel_requested_by="alice")
    html = app.test_client().get(f"/taches/{tache_id}/status").get_data(as_text=True)
    assert 'data-action="cancel"' not in html
    assert "stopping…" in html


def test_no_button_for_an_action_the_hook_refuses(app: Flask) -> None:
    app.config["TACHES_AUTHORIZE"] = lambda tache, action: action != "delete"
    tache_id = make(app, status="FAILED")
    client = app.test_client()
    html = client.get(f"/taches/{tache_id}/status").get_data(as_text=True)
    assert 'data-action="restart"' in html
    assert 'data-action="delete"' not in html
    token = csrf_token(client)
    response = client.post(f"/taches/{tache_id}/delete", data={"csrf_token": token})
    assert response.status_code == 403  # visible, so no need to hide it behind a 404
    assert read(app, tache_id) is not None


# -- actions ------------------------------------------------------------------------------


def test_cancel_by_form_redirects_back_to_the_page(app: Flask) -> None:
    tache_id = make(app)
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        f"/taches/{tache_id}/cancel",
        data={"csrf_token": token},
        headers={"Referer": "http://localhost/my/page?x=1"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "http://localhost/my/page?x=1"
    tache = read(app, tache_id)
    assert tache is not None and tache.status == Status.CANCELLED


@pytest.mark.parametrize(
    "referrer",
    ["https://evil.example/phish", "/\\evil.example/phish", "https:/\\evil.example/phish"],
)
def test_redirect_never_leaves_the_site(app: Flask, referrer: str) -> None:
    tache_id = make(app)
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        f"/taches/{tache_id}/cancel",
        data={"csrf_token": token},
        headers={"Referer": referrer},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/taches/{tache_id}"


def test_cancel_by_fetch_answers_the_task_as_json(app: Flask) -> None:
    tache_id = make(app)
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        f"/taches/{tache_id}/cancel",
        headers={"X-CSRFToken": token, "X-Requested-With": "fetch"},
    )
    assert response.status_code == 200
    tache = response.get_json()["tache"]
    assert tache["id"] == tache_id
    assert (tache["status"], tache["finished"], tache["label"]) == ("CANCELLED", True, "Cancelled")
    assert 'data-status="CANCELLED"' in tache["status_html"]
    assert "parametres_caches" not in tache


def test_cancel_a_running_task_raises_its_flag(app: Flask) -> None:
    tache_id = running(app, owner="alice")
    client = app.test_client()
    alice = as_user("alice")
    token = csrf_token(client, **alice)
    response = client.post(f"/taches/{tache_id}/cancel", headers={**alice, "X-CSRFToken": token})
    assert response.status_code == 303
    tache = read(app, tache_id)
    assert tache is not None
    assert tache.status == Status.RUNNING  # its own process stops it
    assert tache.cancel_requested_by == "alice"


def test_restart_a_failed_task(app: Flask) -> None:
    tache_id = make(app, status="FAILED", ended_at=utcnow())
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(f"/taches/{tache_id}/restart", headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 200
    assert response.get_json()["tache"]["status"] == "TO_RUN"


def test_delete_answers_the_last_state_marked_deleted(app: Flask) -> None:
    tache_id = make(app, status="COMPLETED")
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(f"/taches/{tache_id}/delete", headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 200
    tache = response.get_json()["tache"]
    assert (tache["id"], tache["deleted"], tache["status_html"]) == (tache_id, True, "")
    assert read(app, tache_id) is None
    assert client.get(f"/taches/{tache_id}/status").status_code == 404


def test_delete_from_the_task_page_goes_to_the_dashboard(app: Flask) -> None:
    tache_id = make(app, status="COMPLETED")
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        f"/taches/{tache_id}/delete",
        data={"csrf_token": token},
        headers={"Referer": f"http://localhost/taches/{tache_id}"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/taches/"


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("RUNNING", "delete", "is RUNNING: cancel it first"),
        ("TO_RUN", "restart", "is TO_RUN: nothing to restart"),
        ("COMPLETED", "cancel", "is COMPLETED: nothing to cancel"),
    ],
)
def test_invalid_transition_is_409_with_one_line(
    app: Flask, status: str, action: str, message: str
) -> None:
    tache_id = running(app) if status == "RUNNING" else make(app, status=status)
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(f"/taches/{tache_id}/{action}", headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert message in error and "\n" not in error
    html = client.post(f"/taches/{tache_id}/{action}", data={"csrf_token": token})
    assert html.status_code == 409
    assert message in html.get_data(as_text=True)
    tache = read(app, tache_id)
    assert tache is not None and tache.status == status


@pytest.mark.parametrize("action", ["cancel", "restart", "delete", "cancel-all"])
def test_actions_are_post_only(app: Flask, action: str) -> None:
    tache_id = make(app)
    path = "/taches/cancel-all" if action == "cancel-all" else f"/taches/{tache_id}/{action}"
    assert app.test_client().get(path).status_code == 405


def test_action_on_another_users_task_is_404_and_changes_nothing(app: Flask) -> None:
    tache_id = make(app, owner="alice")
    client = app.test_client()
    bob = as_user("bob")
    token = csrf_token(client, **bob)
    for action in ("cancel", "delete"):
        response = client.post(
            f"/taches/{tache_id}/{action}", headers={**bob, "X-CSRFToken": token, **JSON}
        )
        assert response.status_code == 404
        assert response.get_json() == {"error": f"no task {tache_id} here"}
    tache = read(app, tache_id)
    assert tache is not None and tache.status == Status.TO_RUN


def test_action_on_unknown_id_is_404(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/taches/777/cancel", headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 404
    assert response.get_json() == {"error": "no task 777 here"}


# -- CSRF ----------------------------------------------------------------------------------


def test_action_without_token_is_400_and_changes_nothing(app: Flask) -> None:
    tache_id = make(app)
    client = app.test_client()
    csrf_token(client)  # a session exists, the form just lacks the token
    response = client.post(f"/taches/{tache_id}/cancel")
    assert response.status_code == 400
    assert "CSRF token is missing" in response.get_data(as_text=True)
    response = client.post(f"/taches/{tache_id}/cancel", headers=JSON)
    assert response.status_code == 400
    assert "CSRF" in response.get_json()["error"]
    tache = read(app, tache_id)
    assert tache is not None and tache.status == Status.TO_RUN


@pytest.mark.parametrize("bad", ["garbage", "x.y.z", ""])
def test_action_with_a_bad_token_is_400(app: Flask, bad: str) -> None:
    tache_id = make(app)
    client = app.test_client()
    csrf_token(client)
    response = client.post(f"/taches/{tache_id}/cancel", data={"csrf_token": bad}, headers=JSON)
    assert response.status_code == 400
    assert "CSRF" in response.get_json()["error"]


def test_token_of_another_session_is_refused(app: Flask) -> None:
    tache_id = make(app)
    stolen = csrf_token(app.test_client())
    victim = app.test_client()
    csrf_token(victim)
    response = victim.post(f"/taches/{tache_id}/cancel", data={"csrf_token": stolen})
    assert response.status_code == 400
    assert "does not belong to this session" in response.get_data(as_text=True)


def test_token_without_a_session_is_refused(app: Flask) -> None:
    tache_id = make(app)
    token = csrf_token(app.test_client())
    response = app.test_client().post(f"/taches/{tache_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 400


def test_the_script_meta_token_works_in_the_header(app: Flask) -> None:
    tache_id = make(app)
    client = app.test_client()
    html = client.get("/taches/").get_data(as_text=True)
    meta = html.split('<meta name="taches-csrf" content="', 1)[1].split('"', 1)[0]
    response = client.post(f"/taches/{tache_id}/cancel", headers={"X-CSRFToken": meta, **JSON})
    assert response.status_code == 200


# -- Flask-WTF -----------------------------------------------------------------------------


@pytest.fixture
def wtf_app(app: Flask) -> Flask:
    csrf_module = pytest.importorskip("flask_wtf.csrf")
    csrf_module.CSRFProtect(app)
    return app


def test_with_flask_wtf_its_token_is_the_one_used(wtf_app: Flask) -> None:
    tache_id = make(wtf_app)
    client = wtf_app.test_client()
    token = csrf_token(client)
    with client.session_transaction() as session:
        assert "csrf_token" in session  # Flask-WTF's session key, not ours
        assert "_taches_csrf" not in session
    response = client.post(f"/taches/{tache_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 303


def test_with_flask_wtf_a_missing_token_is_400(wtf_app: Flask) -> None:
    tache_id = make(wtf_app)
    client = wtf_app.test_client()
    csrf_token(client)
    response = client.post(f"/taches/{tache_id}/cancel")
    assert response.status_code == 400
    tache = read(wtf_app, tache_id)
    assert tache is not None and tache.status == Status.TO_RUN


def test_with_flask_wtf_checked_by_us_when_its_default_check_is_off(app: Flask) -> None:
    csrf_module = pytest.importorskip("flask_wtf.csrf")
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf_module.CSRFProtect(app)
    tache_id = make(app)
    client = app.test_client()
    csrf_token(client)
    response = client.post(f"/taches/{tache_id}/cancel", headers=JSON)
    assert response.status_code == 400
    assert "CSRF" in response.get_json()["error"]
    token = csrf_token(client)
    assert (
        client.post(f"/taches/{tache_id}/cancel", headers={"X-CSRFToken": token}).status_code == 303
    )


def test_with_flask_wtf_the_batch_post_needs_no_token(wtf_app: Flask) -> None:
    tache_id = make(wtf_app)
    response = wtf_app.test_client().post("/taches/status", json={"ids": [tache_id]})
    assert response.status_code == 200
    assert [t["id"] for t in response.get_json()["taches"]] == [tache_id]


def test_flask_wtf_set_up_after_taches_still_lets_the_batch_through(tmp_path: Path) -> None:
    csrf_module = pytest.importorskip("flask_wtf.csrf")
    from flask_sqlalchemy import SQLAlchemy

    from flask_taches import TachesExtension

    app = Flask("tests", instance_path=str(tmp_path))
    app.config.update(SECRET_KEY="k", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.db'}")
    own_db = SQLAlchemy(app)
    TachesExtension(app, own_db)
    csrf_module.CSRFProtect(app)  # after flask-taches: the exemption is applied per request
    with app.app_context():
        own_db.create_all()
    response = app.test_client().post("/taches/status", json={"ids": [1]})
    assert response.status_code == 200
    assert response.get_json()["missing"]["ids"] == [1]
    with app.app_context():
        own_db.engine.dispose()


# -- the attached file -----------------------------------------------------------------------


def test_fichier_downloads_the_attachment(app: Flask, tmp_path: Path) -> None:
    source = tmp_path / "report.csv"
    source.write_text("a,b\n1,2\n")
    with app.app_context():
        tache_id = taches.add(METHOD, owner="alice", fichier=source)
    client = app.test_client()
    with client.get(f"/taches/{tache_id}/fichier", headers=as_user("alice")) as response:
        assert response.status_code == 200
        assert response.get_data() == b"a,b\n1,2\n"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert "report.csv" in response.headers["Content-Disposition"]
    with client.get(f"/taches/{tache_id}/fichier", headers=as_user("bob")) as response:
        assert response.status_code == 404
    page = client.get(f"/taches/{tache_id}", headers=as_user("alice")).get_data(as_text=True)
    assert f'href="/taches/{tache_id}/fichier"' in page


def test_fichier_of_a_task_without_file_is_404(app: Flask) -> None:
    tache_id = make(app)
    response = app.test_client().get(f"/taches/{tache_id}/fichier", headers=JSON)
    assert response.status_code == 404
    assert response.get_json() == {"error": f"task {tache_id} has no file"}


# -- the task page ----------------------------------------------------------------------------


def test_task_page_shows_everything_but_the_hidden_parameters(app: Flask) -> None:
    first = make(app, status="COMPLETED", owner="alice")
    started = utcnow() - timedelta(minutes=2)
    tache_id = make(
        app,
        owner="alice",
        parametres={"source": 3},
        signature="export-3",
        queue="slow",
        status="FAILED",
        priority=7,
        attempts=2,
        max_attempts=3,
        started_at=started,
        ended_at=started + timedelta(seconds=30),
        logs=[
            {"level": "info", "message": "line one", "details": None, "at": started.isoformat()},
            {
                "level": "error",
                "message": "Traceback (most recent call last):\n  boom",
                "details": {"row": 12},
                "at": started.isoformat(),
            },
        ],
        progress={"step": 3, "max": 4, "phase": 1, "phases": 1, "label": "rows"},
    )
    with app.app_context():
        taches.get_or_raise(first).next_id = tache_id
        db.session.commit()
    response = app.test_client().get(f"/taches/{tache_id}", headers=as_user("alice"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1" in html and f"Task {tache_id}" in html
    for fragment in (
        METHOD,
        "export-3",
        "alice",
        "slow",
        "<dd>7</dd>",
        "<dd>2 / 3</dd>",
        started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "&#34;source&#34;: 3",
        "line one",
        "Traceback (most recent call last):\n  boom",
        "<pre>{\n  &#34;row&#34;: 12\n}</pre>",
        f'href="/taches/{first}"',
        'data-percent="75.0"',
        f'<span class="tache tache--page" data-id="{tache_id}">',
    ):
        assert fragment in html, fragment
    assert SECRET not in html
    assert "parametres_caches" not in html


def test_task_page_answers_json_when_asked(app: Flask) -> None:
    tache_id = make(app)
    response = app.test_client().get(f"/taches/{tache_id}", headers=JSON)
    assert response.get_json()["id"] == tache_id


def test_task_page_interrupts_a_task_whose_heartbeat_stopped(app: Flask) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    tache_id = make(app, status="RUNNING", started_at=long_ago, heartbeat_at=long_ago, attempts=1)
    html = app.test_client().get(f"/taches/{tache_id}").get_data(as_text=True)
    assert 'data-status="INTERRUPTED"' in html
    assert "no heartbeat for" in html


# -- escaping and secrets -------------------------------------------------------------------


def test_script_in_logs_parametres_and_signature_shows_as_text(app: Flask) -> None:
    tache_id = make(
        app,
        parametres={"name": XSS},
        signature=XSS,
        status="COMPLETED",
        result=XSS,
        logs=[
            {"level": "error", "message": XSS, "details": {"x": XSS}, "at": utcnow().isoformat()}
        ],
        progress={"step": 1, "max": 2, "label": XSS},
    )
    client = app.test_client()
    pages = [
        client.get(f"/taches/{tache_id}").get_data(as_text=True),
        client.get(f"/taches/{tache_id}/status").get_data(as_text=True),
        client.get("/taches/").get_data(as_text=True),
    ]
    batch = client.get(f"/taches/status?ids={tache_id}").get_json()["taches"][0]
    pages += [batch["status_html"], batch["result_html"]]
    for html in pages:
        assert "<script>alert" not in html
    assert ESCAPED in pages[0]  # log message, details, parametres, signature, result
    assert pages[0].count("&lt;script&gt;") >= 5
    assert ESCAPED in pages[1]  # the progress label
    assert ESCAPED in pages[2]  # the signature column
    assert ESCAPED in batch["result_html"]  # result and last log message


def test_parametres_caches_never_reach_any_response(app: Flask) -> None:
    tache_id = make(app, status="FAILED", signature="s")
    client = app.test_client()
    token = csrf_token(client)
    responses = [
        client.get(f"/taches/{tache_id}"),
        client.get(f"/taches/{tache_id}", headers=JSON),
        client.get(f"/taches/{tache_id}/status"),
        client.get(f"/taches/{tache_id}/status", headers=JSON),
        client.get(f"/taches/{tache_id}/status.json"),
        client.get(f"/taches/status?ids={tache_id}&signatures=s"),
        client.post("/taches/status", json={"ids": [tache_id], "signatures": ["s"]}),
        client.get("/taches/"),
        client.post(f"/taches/{tache_id}/restart", headers={"X-CSRFToken": token, **JSON}),
        client.post(f"/taches/{tache_id}/cancel", headers={"X-CSRFToken": token, **JSON}),
        client.post(f"/taches/{tache_id}/delete", headers={"X-CSRFToken": token, **JSON}),
    ]
    for response in responses:
        assert response.status_code == 200, response.request.path
        body = response.get_data(as_text=True)
        assert SECRET not in body
        assert "parametres_caches" not in body


# -- overriding templates and labels ----------------------------------------------------------


def test_an_app_template_of_the_same_name_overrides_a_partial(app: Flask, tmp_path: Path) -> None:
    folder = tmp_path / "app_templates" / "taches"
    folder.mkdir(parents=True)
    (folder / "_status.html").write_text(
        '<div class="mine" data-tache-id="{{ tache.id }}" data-status="{{ tache.status }}">'
        "{{ taches_label(tache.status) }}</div>"
    )
    app.jinja_loader = FileSystemLoader(str(tmp_path / "app_templates"))  # type: ignore[misc]
    tache_id = make(app)
    client = app.test_client()
    fragment = client.get(f"/taches/{tache_id}/status").get_data(as_text=True)
    assert (
        fragment
        == f'<div class="mine" data-tache-id="{tache_id}" data-status="TO_RUN">Queued</div>'
    )
    batch = client.get(f"/taches/status?ids={tache_id}").get_json()["taches"][0]
    assert batch["status_html"] == fragment
    dashboard = client.get("/taches/").get_data(as_text=True)
    assert f'<span class="tache" data-id="{tache_id}">{fragment}</span>' in dashboard


def test_an_app_base_template_wraps_the_pages(app: Flask, tmp_path: Path) -> None:
    folder = tmp_path / "app_templates" / "taches"
    folder.mkdir(parents=True)
    (folder / "base.html").write_text(
        "<html><body><nav>MY APP</nav>{% block content %}{% endblock %}"
        "{{ taches_script() }}</body></html>"
    )
    app.jinja_loader = FileSystemLoader(str(tmp_path / "app_templates"))  # type: ignore[misc]
    html = app.test_client().get("/taches/").get_data(as_text=True)
    assert html.startswith("<html><body><nav>MY APP</nav>")
    assert 'class="taches-dashboard"' in html


@pytest.mark.taches_config(TACHES_LOCALE="fr", **USERS)
def test_french_labels_and_questions(app: Flask) -> None:
    tache_id = make(app, status="FAILED")
    html = app.test_client().get(f"/taches/{tache_id}/status").get_data(as_text=True)
    assert '<span class="tache-badge tache-badge--failed">En erreur</span>' in html
    assert f'data-confirm="Relancer la tâche {tache_id} ?"' in html
    assert ">Supprimer</button>" in html
    data = app.test_client().get(f"/taches/{tache_id}/status.json").get_json()
    assert data["label"] == "En erreur"
    page = app.test_client().get("/taches/").get_data(as_text=True)
    assert '<html lang="fr">' in page and "Tâches" in page


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/taches/{id}/status", 404),
        ("/taches/{id}/status.json", 404),
        ("/taches/{id}", 404),
        ("/taches/{id}/fichier", 404),
        ("/taches/status?ids={id}", 200),  # the batch says "missing"
        ("/taches/?before={id}", 200),  # a keyset bound beyond every id
    ],
)
def test_an_id_beyond_the_integer_column_is_no_task_on_every_database(
    any_db_app: Flask, path: str, status: int
) -> None:
    """2**31 fits SQLite's rowid but not PostgreSQL's INTEGER: never a 500."""
    response = any_db_app.test_client().get(path.format(id=2**31))
    assert response.status_code == status
    if "ids=" in path:
        assert response.get_json()["missing"]["ids"] == [2**31]
