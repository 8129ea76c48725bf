"""The actions on tasks (cancel, restart, delete), their redirects, and the CSRF check."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status
from flask_taches.clock import utcnow
from tests.web import JSON, USERS, as_user, csrf_token, make, read, running

# These tests are about the actions themselves, on shared tasks (no owner), by
# anonymous users: they open actions on shared tasks to everyone, as 0.1.0 did.
# The default (only an admin acts on a shared task) is tested at the end.
pytestmark = pytest.mark.taches_config(TACHES_SHARED_ACTIONS=True, **USERS)


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


@pytest.mark.parametrize("path", ["/taches/{id}/cancel", "/taches/cancel-all"])
def test_with_flask_wtf_a_refused_token_answers_json_to_json_clients(
    wtf_app: Flask, path: str
) -> None:
    tache_id = make(wtf_app)
    client = wtf_app.test_client()
    csrf_token(client)
    for headers in (JSON, {**JSON, "X-CSRFToken": "forged"}):
        response = client.post(path.format(id=tache_id), headers=headers)
        assert response.status_code == 400
        assert response.is_json, response.get_data(as_text=True)
        assert "CSRF" in response.get_json()["error"]
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


# -- shared tasks: seen by all, acted on by admins only unless TACHES_SHARED_ACTIONS ---------


@pytest.mark.taches_config(**USERS)
@pytest.mark.parametrize("action", ["cancel", "restart", "delete"])
def test_by_default_only_an_admin_acts_on_a_shared_task(app: Flask, action: str) -> None:
    tache_id = make(app, status="TO_RUN" if action == "cancel" else "FAILED")
    client = app.test_client()
    for user in (as_user(None), as_user("bob")):
        token = csrf_token(client, **user)
        response = client.post(
            f"/taches/{tache_id}/{action}", headers={**user, "X-CSRFToken": token, **JSON}
        )
        assert response.status_code == 403
        assert response.get_json() == {"error": f"you may not {action} task {tache_id}"}
        assert client.get(f"/taches/{tache_id}", headers=user).status_code == 200  # still seen
    before = read(app, tache_id)
    assert before is not None and before.status in ("TO_RUN", "FAILED")
    admin = as_user("root", admin=True)
    token = csrf_token(client, **admin)
    response = client.post(
        f"/taches/{tache_id}/{action}", headers={**admin, "X-CSRFToken": token, **JSON}
    )
    assert response.status_code == 200


@pytest.mark.taches_config(**USERS)
def test_no_button_is_shown_that_the_viewer_may_not_use(app: Flask) -> None:
    shared = make(app, status="FAILED")
    own = make(app, status="FAILED", owner="bob")
    client = app.test_client()
    for tache_id, user, forms in (
        (shared, as_user("bob"), 0),
        (shared, as_user(None), 0),
        (shared, as_user("root", admin=True), 2),
        (own, as_user("bob"), 2),
    ):
        fragment = client.get(f"/taches/{tache_id}/status", headers=user).get_data(as_text=True)
        assert fragment.count("<form") == forms, (tache_id, user)
        page = client.get(f"/taches/{tache_id}", headers=user).get_data(as_text=True)
        assert page.count('class="tache-action"') == forms, (tache_id, user)


@pytest.mark.taches_config(**USERS)
def test_cancel_all_leaves_shared_tasks_to_admins(app: Flask) -> None:
    shared = make(app)
    own = make(app, owner="bob")
    client = app.test_client()
    bob = as_user("bob")
    token = csrf_token(client, **bob)
    response = client.post("/taches/cancel-all", headers={**bob, "X-CSRFToken": token, **JSON})
    assert response.get_json()["cancelled"] == [own]
    tache = read(app, shared)
    assert tache is not None and tache.status == Status.TO_RUN


@pytest.mark.taches_config(TACHES_SHARED_ACTIONS=True, **USERS)
def test_the_setting_lets_everyone_act_on_shared_tasks(app: Flask) -> None:
    tache_id = make(app, status="FAILED")
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(f"/taches/{tache_id}/restart", headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 200
    assert response.get_json()["tache"]["status"] == "TO_RUN"
