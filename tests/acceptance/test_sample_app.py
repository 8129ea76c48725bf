"""The sample app (what ``make demo`` runs): its pages, forms and tasks.

Pages and forms through Flask's test client on a real SQLite file; the demo's
tasks through real ``flask --app sample_app taches run ID`` subprocesses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from flask_taches import Tache

REPO = Path(__file__).resolve().parents[2]
DEMO = "sample_app.services:DemoService.demo"
FAIL = "sample_app.services:DemoService.fail"
REPORT = "sample_app.services:ReportService.build"
RUN_TIMEOUT = 60  # seconds a `flask taches run` of a short task may take at most
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def sample(tmp_path: Path) -> Iterator[Flask]:
    from sample_app import create_app, db

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "tests",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'sample.sqlite'}",
            "TACHES_FOLDER": str(tmp_path / "files"),
        }
    )
    yield app
    with app.app_context():
        state = app.extensions["taches.state"]
        if state.built_store is not None:
            state.built_store.engine.dispose()
        db.session.remove()
        db.engine.dispose()


def token(client: FlaskClient) -> str:
    match = TOKEN.search(client.get("/").get_data(as_text=True))
    assert match, "the demo page carries a CSRF token"
    return match.group(1)


def login(client: FlaskClient, user: str) -> str:
    """Switch user like the header's buttons; returns the session's CSRF token."""
    csrf = token(client)
    response = client.post("/login", data={"user": user, "csrf_token": csrf, "next": "/"})
    assert response.status_code == 302
    return csrf


def all_taches(app: Flask) -> list[Tache]:
    from sample_app import db

    with app.app_context():
        rows = db.session.scalars(select(Tache).order_by(Tache.id)).all()
        db.session.expunge_all()
        return list(rows)


def count_taches(app: Flask) -> int:
    from sample_app import db

    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Tache)) or 0)


def listed_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="tache-(\d+)">', html)]


def add(app: Flask, method: str, **options: Any) -> int:
    from sample_app import taches

    with app.app_context():
        return taches.add(method, **options)


def test_demo_page_loads_status_js_and_offers_1_10_100(sample: Flask) -> None:
    html = sample.test_client().get("/").get_data(as_text=True)
    assert '<meta name="taches-csrf" content="' in html
    assert 'src="/taches/static/status.js" data-batch-url="/taches/status"' in html
    assert 'data-poll-ms="1000"' in html  # the demo's livelier default
    assert 'href="/taches/static/taches.css"' in html
    assert re.findall(r'<button name="count" value="(\d+)"', html) == ["1", "10", "100"]
    assert 'href="/taches/"' in html  # the dashboard


def test_an_environment_setting_wins_over_the_demo_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sample_app import create_app, db

    monkeypatch.setenv("TACHES_JS_POLL", "0.5")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'env.sqlite'}"})
    try:
        assert 'data-poll-ms="500"' in app.test_client().get("/").get_data(as_text=True)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_add_buttons_add_tasks_owned_by_the_user(sample: Flask) -> None:
    client = sample.test_client()
    csrf = login(client, "bob")
    response = client.post(
        "/add", data={"csrf_token": csrf, "count": "10", "seconds": "2", "delay": "30"}
    )
    assert response.status_code == 302
    response = client.post("/add", data={"csrf_token": csrf, "count": "100", "kind": "fail"})
    assert response.status_code == 302
    rows = all_taches(sample)
    assert len(rows) == 110
    assert {t.status for t in rows} == {"TO_RUN"}
    assert {t.owner for t in rows} == {"bob"}
    first, last = rows[:10], rows[10:]
    assert {t.method for t in first} == {DEMO}
    assert {json.dumps(t.parametres) for t in first} == {'{"seconds": 2.0}'}
    assert all(
        t.run_at is not None and t.run_at >= t.created_at + timedelta(seconds=29) for t in first
    )
    assert {t.method for t in last} == {FAIL}
    html = client.get("/").get_data(as_text=True)
    assert "Added 100 failing tasks (#11 to #110)." in html
    assert listed_ids(html) == list(range(110, 10, -1))  # the newest 100
    assert html.count('<span class="tache" data-id="') == 100


@pytest.mark.parametrize(
    ("form", "with_token"),
    [
        ({"count": "1"}, False),
        ({"count": "1", "csrf_token": "forged"}, False),
        ({"count": "7"}, True),
        ({"count": "ten"}, True),
        ({"count": "1", "seconds": "-1"}, True),
        ({"count": "1", "seconds": "abc"}, True),
        ({"count": "1", "delay": "99999"}, True),
        ({"count": "1", "kind": "shell"}, True),
    ],
)
def test_add_refuses_bad_input_and_adds_nothing(
    sample: Flask, form: dict[str, str], with_token: bool
) -> None:
    client = sample.test_client()
    csrf = login(client, "alice")
    data = {"csrf_token": csrf, **form} if with_token else form
    assert client.post("/add", data=data).status_code == 400
    assert count_taches(sample) == 0


def test_users_see_their_own_tasks_and_the_admin_sees_all(sample: Flask) -> None:
    alice, bob, nobody = (sample.test_client() for _ in range(3))
    login(alice, "alice")
    csrf_bob = login(bob, "bob")
    bob.post("/add", data={"csrf_token": csrf_bob, "count": "1"})
    alice_id = add(sample, DEMO, owner="alice")
    shared_id = add(sample, DEMO, owner=None)
    (bob_id,) = [t.id for t in all_taches(sample) if t.owner == "bob"]

    assert listed_ids(bob.get("/").get_data(as_text=True)) == [shared_id, bob_id]
    assert bob.get(f"/taches/{alice_id}").status_code == 404  # not 403: no probing
    assert bob.get(f"/taches/{bob_id}").status_code == 200
    assert listed_ids(alice.get("/").get_data(as_text=True)) == [shared_id, alice_id, bob_id]
    assert alice.get(f"/taches/{bob_id}").status_code == 200  # alice is the admin
    assert listed_ids(nobody.get("/").get_data(as_text=True)) == [shared_id]
    assert nobody.get(f"/taches/{bob_id}").status_code == 404


def test_dashboard_wears_the_demo_layout(sample: Flask) -> None:
    """sample_app/templates/taches/base.html overrides the extension's by name."""
    client = sample.test_client()
    login(client, "alice")
    tache_id = add(sample, DEMO, owner="alice")
    for path in ("/taches/", f"/taches/{tache_id}"):
        html = client.get(path).get_data(as_text=True)
        assert '<header class="site">' in html
        assert 'value="alice" aria-pressed="true"' in html
        assert html.count('src="/taches/static/status.js"') == 1
        assert re.search(f'<(span|tr) class="tache[^"]*" data-id="{tache_id}"', html)


def test_login_switch(sample: Flask) -> None:
    client = sample.test_client()
    csrf = token(client)
    assert 'value="alice" aria-pressed' not in client.get("/").get_data(as_text=True)
    response = client.post("/login", data={"user": "alice", "csrf_token": csrf, "next": "/monitor"})
    assert response.headers["Location"] == "/monitor"
    assert 'value="alice" aria-pressed="true"' in client.get("/").get_data(as_text=True)
    # Only back to a page of this site.
    response = client.post(
        "/login", data={"user": "bob", "csrf_token": csrf, "next": "//evil.example/"}
    )
    assert response.headers["Location"] == "/"
    assert client.post("/login", data={"user": "mallory", "csrf_token": csrf}).status_code == 400
    assert client.post("/login", data={"user": "alice"}).status_code == 400  # no token
    client.post("/login", data={"user": "", "csrf_token": csrf})
    assert 'value="" aria-pressed="true"' in client.get("/").get_data(as_text=True)


def test_monitor_page_by_id_and_signature_with_status_filters(sample: Flask) -> None:
    client = sample.test_client()
    first = add(sample, DEMO, owner=None)
    second = add(sample, DEMO, owner=None)
    response = client.get(
        f"/monitor?ids={first},{second},x&signature=nightly&status=FAILED&status=CANCELLED"
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Ignored &#39;x&#39;: not a task id." in html
    for tache_id in (first, second):
        # Server-rendered and live...
        assert f'<span class="tache" data-id="{tache_id}"><div class="tache-status' in html
        # ...and behind the filter: not rendered while TO_RUN, status.js shows it later.
        assert (
            f'<span class="tache" data-id="{tache_id}" '
            'data-status="[&#34;FAILED&#34;, &#34;CANCELLED&#34;]"></span>'
        ) in html
    assert (
        '<span class="tache" data-signature="nightly" id="by-signature">'
        '<em class="none">no task yet</em></span>'
    ) in html
    assert (
        '<span class="tache" data-signature="nightly" '
        'data-status=\'["FAILED", "CANCELLED"]\' id="by-signature-filtered"></span>'
    ) in html
    # Without ids, the latest tasks; with an empty ids, none.
    assert f'data-row="{second}"' in client.get("/monitor").get_data(as_text=True)
    assert "data-row=" not in client.get("/monitor?ids=").get_data(as_text=True)


def test_start_a_task_with_a_signature(sample: Flask) -> None:
    client = sample.test_client()
    csrf = login(client, "bob")
    response = client.post(
        "/signature",
        data={"csrf_token": csrf, "signature": "nightly", "seconds": "1"},
        headers={"X-Requested-With": "fetch"},
    )
    assert response.status_code == 200
    reply = response.get_json()
    assert reply["signature"] == "nightly"
    response = client.post("/signature", data={"csrf_token": csrf, "signature": "nightly"})
    assert response.headers["Location"] == "/monitor?signature=nightly"
    assert client.post("/signature", data={"csrf_token": csrf, "signature": " "}).status_code == 400
    rows = all_taches(sample)
    assert [(t.id, t.method, t.signature, t.owner) for t in rows] == [
        (reply["id"], REPORT, "nightly", "bob"),
        (reply["id"] + 1, REPORT, "nightly", "bob"),
    ]


def run_task(
    sample: Flask, tache_id: int, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": "/usr/bin:/bin",
        "FLASK_SQLALCHEMY_DATABASE_URI": sample.config["SQLALCHEMY_DATABASE_URI"],
        "TACHES_FOLDER": str(tmp_path / "files"),
        **env,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "sample_app",
            "taches",
            "run",
            str(tache_id),
            "-v",
        ],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def test_demo_tasks_run_with_flask_taches_run(sample: Flask, tmp_path: Path) -> None:
    demo = add(sample, DEMO, parametres={"seconds": 0.2, "steps": 4})
    failing = add(sample, FAIL, parametres={"seconds": 0})
    report = add(sample, REPORT, parametres={"seconds": 0})
    ran = {
        demo: run_task(sample, demo, tmp_path),
        failing: run_task(sample, failing, tmp_path),
        # The catalogue service is built from the app's config: prove it is the one injected.
        report: run_task(
            sample, report, tmp_path, FLASK_SAMPLE_CATALOGUE='[["kiwis", 5], ["limes", 7]]'
        ),
    }
    assert {i: p.returncode for i, p in ran.items()} == {demo: 0, failing: 1, report: 0}, ran
    rows = {t.id: t for t in all_taches(sample)}

    assert rows[demo].status == "COMPLETED"
    assert rows[demo].result == {"items": 4, "seconds": 0.2}
    progress = rows[demo].progress or {}
    assert progress["percent"] == 100
    assert progress["label"] == "Item 4 of 4"
    assert [e["message"] for e in rows[demo].logs] == [
        "Demo task started",
        "Prepared 4 items",
        "Half way there",
        "Demo task done",
    ]

    assert rows[failing].status == "FAILED"
    messages = " ".join(f"{e['message']} {e['details']}" for e in rows[failing].logs)
    assert "Something looks wrong" in messages
    assert "the demo failure: this task always fails" in messages

    assert rows[report].status == "COMPLETED"
    assert rows[report].result == {"items": 2, "units": 12}


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "//evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "monitor",
        "",
    ],
)
def test_login_goes_back_only_to_a_page_of_this_site(sample: Flask, target: str) -> None:
    """The demo's ``next`` goes through the extension's one same-site check."""
    client = sample.test_client()
    csrf = token(client)
    response = client.post("/login", data={"user": "bob", "csrf_token": csrf, "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_goes_back_to_an_absolute_url_of_this_site(sample: Flask) -> None:
    client = sample.test_client()
    csrf = token(client)
    url = "http://localhost/monitor?signature=a"
    response = client.post("/login", data={"user": "bob", "csrf_token": csrf, "next": url})
    assert response.headers["Location"] == url


@pytest.mark.parametrize("ids", ["²", "9" * 5000, "1²"])
def test_monitor_ignores_what_is_not_an_id(sample: Flask, ids: str) -> None:
    response = sample.test_client().get(f"/monitor?ids={ids}")
    assert response.status_code == 200
    assert "not a task id." in response.get_data(as_text=True)


def test_a_signature_no_database_stores_is_refused_in_one_line(sample: Flask) -> None:
    client = sample.test_client()
    csrf = token(client)
    response = client.post("/signature", data={"signature": "a\x00b", "csrf_token": csrf})
    assert response.status_code == 400
    assert count_taches(sample) == 0
