"""Helpers for the tests of the web side: users by header, tasks in any state, tokens.

The tests' users are fake: ``TACHES_IDENTITY`` and ``TACHES_IS_ADMIN`` point at
the two functions below (as dotted paths, the way a ``.env`` would), which read
the ``X-User`` and ``X-Admin`` headers the test client sends.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, request
from flask.testing import FlaskClient

from flask_taches import Tache
from flask_taches.clock import utcnow
from tests.app import db, taches

#: Marker kwargs for tests that need users: ``@pytest.mark.taches_config(**USERS)``.
USERS = {
    "TACHES_IDENTITY": "tests.web:header_identity",
    "TACHES_IS_ADMIN": "tests.web:header_admin",
}
METHOD = "tests.tasks:add"
SECRET = "hidden-9f2c-never-on-a-page"  # a parametres_caches value no response may carry

_TOKEN = re.compile(r'name="(?:csrf_token|taches-csrf)" (?:value|content)="([^"]+)"')


def header_identity() -> str | None:
    return request.headers.get("X-User")


def header_admin() -> bool:
    return request.headers.get("X-Admin") == "1"


def as_user(user: str | None, admin: bool = False, **headers: str) -> dict[str, str]:
    """Headers of a request made by ``user`` (None: anonymous)."""
    out = dict(headers)
    if user is not None:
        out["X-User"] = user
    if admin:
        out["X-Admin"] = "1"
    return out


JSON = {"Accept": "application/json"}


def make(app: Flask, method: str = METHOD, **fields: Any) -> int:
    """Save a task (owner None unless given) and then force any column, e.g. status."""
    options = {k: fields.pop(k) for k in ("parametres", "signature", "queue") if k in fields}
    owner = fields.pop("owner", None)
    with app.app_context():
        tache_id = taches.add(method, owner=owner, parametres_caches={"secret": SECRET}, **options)
        if fields:
            tache = db.session.get(Tache, tache_id)
            assert tache is not None
            for key, value in fields.items():
                setattr(tache, key, value)
            db.session.commit()
        return tache_id


def running(app: Flask, **fields: Any) -> int:
    """A task RUNNING since now, heartbeat fresh, first attempt."""
    now = utcnow()
    return make(app, status="RUNNING", started_at=now, heartbeat_at=now, attempts=1, **fields)


def read(app: Flask, tache_id: int) -> Tache | None:
    with app.app_context():
        tache = taches.get(tache_id)
        if tache is not None:
            db.session.expunge(tache)
        return tache


def token_from(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def csrf_token(client: FlaskClient, **headers: str) -> str:
    """The token a browser would find on the dashboard, for this client's session."""
    response = client.get("/taches/", headers=headers)
    assert response.status_code == 200
    return token_from(response.get_data(as_text=True))
