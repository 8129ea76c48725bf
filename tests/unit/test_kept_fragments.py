"""A finished task's fragments rendered once: never another viewer's buttons or token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from jinja2 import ChoiceLoader, FileSystemLoader

from flask_taches.clock import utcnow
from flask_taches.web import fragments
from tests.app import db, taches
from tests.web import JSON, USERS, as_user, make, token_from

pytestmark = pytest.mark.taches_config(**USERS)

ROOT = as_user("root", admin=True)


def failed(app: Flask, message: str, **fields: Any) -> int:
    now = utcnow()
    logs = [{"level": "error", "message": message, "details": None, "at": now.isoformat()}]
    return make(app, status="FAILED", started_at=now, ended_at=now, attempts=1, logs=logs, **fields)


def status_html(client: Any, tache_id: int, **headers: str) -> str:
    answer = client.get(f"/taches/status?ids={tache_id}", headers=headers)
    assert answer.status_code == 200
    html: str = answer.get_json()["taches"][0]["status_html"]
    return html


def test_a_finished_task_is_rendered_once_per_view(app: Flask) -> None:
    tache_id = failed(app, "smtp down")
    client = app.test_client()
    first = status_html(client, tache_id, **ROOT)
    with app.app_context():
        kept = len(fragments.kept_renders(app))
    assert kept == 2  # its status and its result
    assert (
        status_html(client, tache_id, **ROOT).split("csrf_token")[0] == first.split("csrf_token")[0]
    )
    with app.app_context():
        assert len(fragments.kept_renders(app)) == kept  # served from what was kept
    assert fragments.TOKEN_PLACEHOLDER not in first
    unfinished = make(app)
    status_html(client, unfinished, **ROOT)
    with app.app_context():
        assert len(fragments.kept_renders(app)) == kept  # a live task is rendered each time


def test_each_viewer_gets_their_own_buttons_and_token(app: Flask) -> None:
    shared = failed(app, "smtp down")  # no owner: only an admin may restart or delete it
    admin, other_admin, anonymous = app.test_client(), app.test_client(), app.test_client()
    mine = status_html(admin, shared, **ROOT)
    theirs = status_html(other_admin, shared, **ROOT)
    assert mine.count("<form") == theirs.count("<form") == 2
    assert token_from(mine) != token_from(theirs)  # each session's own
    plain = status_html(anonymous, shared)
    assert "<form" not in plain and "csrf_token" not in plain
    # The token served with a kept render works for its own session, and only there.
    answer = other_admin.post(
        f"/taches/{shared}/restart", headers={"X-CSRFToken": token_from(mine), **JSON, **ROOT}
    )
    assert answer.status_code == 400
    answer = admin.post(
        f"/taches/{shared}/restart", headers={"X-CSRFToken": token_from(mine), **JSON, **ROOT}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_a_task_that_ends_again_is_rendered_again(app: Flask) -> None:
    tache_id = failed(app, "smtp down")
    client = app.test_client()
    assert "smtp down" in status_html(client, tache_id, **ROOT)
    later = utcnow()
    logs = [{"level": "error", "message": "disk full", "details": None, "at": later.isoformat()}]
    make_again = {"status": "FAILED", "ended_at": later, "attempts": 2, "logs": logs}
    with app.app_context():
        tache = taches.get(tache_id)
        assert tache is not None
        for key, value in make_again.items():
            setattr(tache, key, value)
        db.session.commit()
    again = status_html(client, tache_id, **ROOT)
    assert "disk full" in again and "smtp down" not in again


def test_an_overridden_partial_is_never_kept(app: Flask, tmp_path: Path) -> None:
    """An application's own partial may show the viewer: each viewer gets their render."""
    folder = tmp_path / "taches"
    folder.mkdir()
    (folder / "_actions.html").write_text("<p>for {{ taches_current_user() }}</p>")
    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(str(tmp_path)), app.jinja_env.loader])
    app.jinja_env.globals["taches_current_user"] = lambda: request.headers.get("X-User")
    tache_id = failed(app, "smtp down")
    client = app.test_client()
    assert "<p>for root</p>" in status_html(client, tache_id, **ROOT)
    assert "<p>for sam</p>" in status_html(client, tache_id, **as_user("sam", admin=True))
    with app.app_context():
        assert len(fragments.kept_renders(app)) == 0
