"""The headers of the blueprint's answers: nosniff, no-store downloads, no framing of the pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from tests.app import taches
from tests.web import JSON, METHOD, USERS, as_user, make

pytestmark = pytest.mark.taches_config(**USERS)


@pytest.mark.parametrize(
    "path",
    [
        "/taches/",
        "/taches/{id}",
        "/taches/{id}/status",
        "/taches/{id}/status.json",
        "/taches/status?ids={id}",
        "/taches/static/status.js",
        "/taches/999999/status.json",  # an error answer too
        "/taches/?before=abc",
    ],
)
def test_every_answer_says_nosniff(app: Flask, path: str) -> None:
    tache_id = make(app)
    with app.test_client().get(path.format(id=tache_id)) as response:  # a file: closed
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_download_is_never_kept(app: Flask, tmp_path: Path) -> None:
    source = tmp_path / "report.csv"
    source.write_text("a,b\n")
    with app.app_context():
        tache_id = taches.add(METHOD, owner="alice", fichier=source)
    with app.test_client().get(f"/taches/{tache_id}/fichier", headers=as_user("alice")) as response:
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert "ETag" not in response.headers
        assert "Last-Modified" not in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/taches/", "/taches/{id}"])
def test_the_pages_refuse_to_be_framed_by_default(app: Flask, path: str) -> None:
    tache_id = make(app)
    response = app.test_client().get(path.format(id=tache_id))
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.taches_config(TACHES_FRAME_ANCESTORS="'self'", **USERS)
def test_the_pages_may_be_framed_by_the_site_itself(app: Flask) -> None:
    tache_id = make(app)
    for path in ("/taches/", f"/taches/{tache_id}"):
        response = app.test_client().get(path)
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.taches_config(TACHES_FRAME_ANCESTORS="'self' https://intranet.example", **USERS)
def test_other_frame_ancestors_are_said_by_csp_alone(app: Flask) -> None:
    """X-Frame-Options cannot name a list of origins: left out, CSP says it."""
    response = app.test_client().get("/taches/")
    csp = response.headers["Content-Security-Policy"]
    assert csp == "frame-ancestors 'self' https://intranet.example"
    assert "X-Frame-Options" not in response.headers


def test_fragments_and_json_carry_no_frame_policy(app: Flask) -> None:
    """Only whole pages are framed; a fragment is fetched, never framed alone."""
    tache_id = make(app)
    response = app.test_client().get(f"/taches/{tache_id}/status", headers=JSON)
    assert "X-Frame-Options" not in response.headers
