"""The blueprint's routes for one task: fragment, JSON, who sees what, file, page.

The actions and their CSRF check are in ``test_views_actions.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from jinja2 import FileSystemLoader

from flask_taches.clock import utcnow
from tests.app import db, taches
from tests.web import JSON, METHOD, SECRET, USERS, as_user, csrf_token, make, read, running

pytestmark = pytest.mark.taches_config(**USERS)

XSS = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


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

#: The tests of what an action offers or answers, on shared tasks: open to all (the default
#: leaves them to admins; see test_auth.py for that rule).
SHARED_ACTIONS = pytest.mark.taches_config(TACHES_SHARED_ACTIONS=True, **USERS)


@SHARED_ACTIONS
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
        '<dd class="taches-fields__attempts">2 / 3</dd>',
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
    assert "done" in pages[1]  # a finished task's final label, not its last progress label
    assert ESCAPED in pages[2]  # the signature column
    assert ESCAPED in batch["result_html"]  # result and last log message


@SHARED_ACTIONS
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
    assert f'<td class="tache-row__status" data-label="Status">{fragment}</td>' in dashboard


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


@pytest.mark.taches_config(TACHES_LOCALE="fr", TACHES_SHARED_ACTIONS=True, **USERS)
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


def test_a_restarted_task_shows_the_attempts_of_its_new_round(app: Flask) -> None:
    tache_id = make(app, status="FAILED", attempts=3, max_attempts=3)
    with app.app_context():
        taches.restart(tache_id)
    html = app.test_client().get(f"/taches/{tache_id}", headers=as_user("alice", admin=True))
    assert '<dd class="taches-fields__attempts">0 / 3</dd>' in html.get_data(as_text=True)
