"""Ids cannot be probed: what a user is shown comes only from the tasks they may see.

The dashboard's rows, its "more" and its pager links; the batch route's
"latest task of a signature"; owners compared exactly on every database
(MariaDB's collation says ``'bob' = 'BOB '``); the service's viewer-aware
calls; and no page, fragment or ``render_tache(id)`` that holds the hidden
parameters for a template to print.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, render_template_string
from jinja2 import ChoiceLoader, DictLoader
from sqlalchemy.exc import InvalidRequestError
from werkzeug.exceptions import NotFound

from flask_taches import InvalidTransition, Status, Tache, TacheNotFound, auth
from flask_taches.web import dashboard
from flask_taches.web.dashboard import PAGE_SIZE
from tests.app import taches
from tests.web import JSON, SECRET, USERS, as_user, make, read

pytestmark = pytest.mark.taches_config(**USERS)

_ROW = re.compile(r'<tr class="tache tache-row" data-id="(\d+)"')
_LINK = re.compile(r'class="taches-pager__(\w+)"(?: rel="\w+")? href="([^"]+)"')
#: Owners MariaDB's default collation takes for "bob" (case, trailing space).
LOOKALIKES = ("BOB", "Bob", "bob ")


@pytest.fixture
def app(any_db_app: Flask) -> Flask:
    """Every test here on each database: SQLite, PostgreSQL, MariaDB."""
    return any_db_app


def many(app: Flask, count: int, **columns: Any) -> list[int]:
    with app.app_context():
        return taches.add_many(
            Tache(method="tests.tasks:add", parametres_caches={"secret": SECRET}, **columns)
            for _ in range(count)
        )


def page(app: Flask, url: str = "/taches/", **headers: str) -> tuple[list[int], dict[str, str]]:
    """The ids of the rows shown, and the pager's links by name."""
    response = app.test_client().get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    links = {name: href.replace("&amp;", "&") for name, href in _LINK.findall(html)}
    return [int(i) for i in _ROW.findall(html)], links


def link_ids(links: dict[str, str]) -> set[int]:
    """Every id a pager link carries (``before=`` or ``after=``)."""
    found: set[int] = set()
    for href in links.values():
        query = parse_qs(urlsplit(href).query)
        found.update(int(v) for key in ("before", "after") for v in query.get(key, []))
    return found


def public_only(tache: Tache, action: str) -> bool:
    return tache.queue == "public"


# -- the dashboard under an authorize hook -------------------------------------------------


def test_a_wall_of_hidden_tasks_neither_hides_the_visible_nor_shows_in_a_link(app: Flask) -> None:
    app.config["TACHES_AUTHORIZE"] = public_only
    visible = many(app, 3, queue="public")
    hidden = many(app, 2 * PAGE_SIZE, queue="private")
    newest = many(app, 2, queue="public")
    rows, links = page(app, **as_user("bob"))
    assert rows == sorted(visible + newest, reverse=True)
    assert links == {}  # nothing more that bob may see
    assert not link_ids(links) & set(hidden)


def test_pages_of_visible_rows_between_hidden_ones(app: Flask) -> None:
    app.config["TACHES_AUTHORIZE"] = public_only
    visible: list[int] = []
    hidden: list[int] = []
    for _ in range(PAGE_SIZE + 10):
        visible += many(app, 1, queue="public")
        hidden += many(app, 2, queue="private")
    newest_first = sorted(visible, reverse=True)
    first, links = page(app, **as_user("bob"))
    assert first == newest_first[:PAGE_SIZE]
    assert set(links) == {"older"}
    assert link_ids(links) == {first[-1]}
    second, links = page(app, links["older"], **as_user("bob"))
    assert second == newest_first[PAGE_SIZE:]
    assert "older" not in links
    back, back_links = page(app, links["newer"], **as_user("bob"))
    assert back == first
    for some_links in (links, back_links):
        assert not link_ids(some_links) & set(hidden)


def test_a_page_past_the_visible_rows_is_empty_with_the_way_back(app: Flask) -> None:
    app.config["TACHES_AUTHORIZE"] = public_only
    (oldest,) = many(app, 1, queue="public")
    many(app, PAGE_SIZE + 5, queue="private")
    rows, links = page(app, f"/taches/?after={oldest}", **as_user("bob"))
    assert rows == []
    assert links == {"newest": "/taches/", "newer": "/taches/"}


def test_past_its_bound_the_walk_links_on_from_the_last_visible_row(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "MAX_READS", 2)
    app.config["TACHES_AUTHORIZE"] = public_only
    many(app, 1, queue="public")  # beyond the bound: the pager does not reach it
    hidden = many(app, 3 * (PAGE_SIZE + 1), queue="private")
    (newest,) = many(app, 1, queue="public")
    rows, links = page(app, **as_user("bob"))
    assert (rows, links) == ([newest], {"older": f"/taches/?before={newest}"})
    # 2 reads of 51 rows find nothing visible: an empty page, no hidden id to go on from
    rows, links = page(app, links["older"], **as_user("bob"))
    assert (rows, links) == ([], {"newest": "/taches/", "newer": "/taches/"})
    assert not link_ids(links) & set(hidden)


# -- owners compare exactly, on every database ----------------------------------------------


def test_an_owner_is_never_matched_by_its_lookalikes(app: Flask) -> None:
    (own,) = many(app, 1, owner="bob")
    others = [i for owner in LOOKALIKES for i in many(app, PAGE_SIZE, owner=owner)]
    rows, links = page(app, **as_user("bob"))
    assert (rows, links) == ([own], {})
    admin = as_user("root", admin=True)
    rows, links = page(app, "/taches/?owner=bob", **admin)
    assert (rows, links) == ([own], {})
    assert not link_ids(links) & set(others)
    with app.test_request_context(headers=as_user("bob")):
        assert [t.id for t in _visible_to_cancel_all()] == [own]


def _visible_to_cancel_all() -> list[Tache]:
    from sqlalchemy import select

    from flask_taches.web.rows import summary_only, visible_rows

    return visible_rows(select(Tache).order_by(Tache.id).options(*summary_only()))


# -- the batch's latest task of a signature is the latest the viewer may see ------------------


def batch(app: Flask, query: str, **headers: str) -> dict[str, Any]:
    response = app.test_client().get(f"/taches/status?{query}", headers=headers)
    assert response.status_code == 200
    data: dict[str, Any] = response.get_json()
    return data


def test_another_users_newer_task_neither_hides_mine_nor_shows(app: Flask) -> None:
    shared = make(app, signature="report")
    bobs = make(app, signature="report", owner="bob")
    make(app, signature="report", owner="alice")
    for lookalike in LOOKALIKES:
        make(app, signature="report", owner=lookalike)
    mine = batch(app, "signatures=report", **as_user("bob"))
    assert [t["id"] for t in mine["taches"]] == [bobs]
    anonymous = batch(app, "signatures=report")
    assert [t["id"] for t in anonymous["taches"]] == [shared]
    carol = batch(app, "signatures=report,unknown", **as_user("carol"))
    assert [t["id"] for t in carol["taches"]] == [shared]
    assert carol["missing"] == {"ids": [], "signatures": ["unknown"]}


def test_a_signature_only_others_used_answers_as_an_unknown_one(app: Flask) -> None:
    make(app, signature="theirs", owner="alice")
    data = batch(app, "signatures=theirs,never-used", **as_user("bob"))
    assert data == {"taches": [], "missing": {"ids": [], "signatures": ["theirs", "never-used"]}}


def test_under_an_authorize_hook_the_latest_visible_is_found(app: Flask) -> None:
    app.config["TACHES_AUTHORIZE"] = public_only
    (public,) = many(app, 1, queue="public", signature="s")
    many(app, 120, queue="private", signature="s")
    data = batch(app, "signatures=s", **as_user("bob"))
    assert [t["id"] for t in data["taches"]] == [public]


# -- the service's calls that see as the current user --------------------------------------


def test_the_service_sees_as_the_viewer_where_asked(app: Flask) -> None:
    bobs = make(app, signature="import", owner="bob")
    alices = make(app, signature="import", owner="alice")
    shared = make(app)
    with app.test_request_context(headers=as_user("bob")):
        assert taches.get(alices) is not None  # trusted code sees everything
        assert taches.latest("import").id == alices  # type: ignore[union-attr]
        assert taches.get_visible(alices) is None
        assert taches.get_visible(10**6) is None
        for missing_or_not_mine in (alices, 10**6):
            with pytest.raises(NotFound) as raised:
                taches.get_or_404(missing_or_not_mine)
            assert raised.value.description == f"no task {missing_or_not_mine} here"
        assert taches.get_or_404(bobs).id == bobs
        assert taches.visible_latest("import").id == bobs  # type: ignore[union-attr]
        assert taches.can(taches.get_or_404(bobs), "cancel")
        assert not taches.can(taches.get_or_404(shared), "cancel")
        with pytest.raises(TacheNotFound, match=f"^no task with id {alices}$"):
            taches.cancel(alices, check=True)
        for action in (taches.cancel, taches.restart, taches.delete):
            with pytest.raises(auth.NotAllowed, match=f"^you may not .* task {shared}$"):
                action(shared, check=True)
        assert taches.cancel(bobs, check=True) == Status.CANCELLED
    for tache_id, status in ((alices, "TO_RUN"), (shared, "TO_RUN"), (bobs, "CANCELLED")):
        tache = read(app, tache_id)
        assert tache is not None and tache.status == status
    # an admin's right granted, a TO_RUN task still refuses a restart for its own reason
    admin = as_user("root", admin=True)
    with app.test_request_context(headers=admin), pytest.raises(InvalidTransition, match="nothing"):
        taches.restart(shared, check=True)


# -- no template is given the hidden parameters ----------------------------------------------

PRINTS_THE_SECRET = "SECRET=[{{ tache.parametres_caches }}]"


def _override(app: Flask) -> None:
    overrides = DictLoader(
        {"taches/tache.html": PRINTS_THE_SECRET, "taches/_status.html": PRINTS_THE_SECRET}
    )
    app.jinja_loader = ChoiceLoader([overrides, app.jinja_loader])  # type: ignore[assignment,list-item]


def _hides_the_secret(fetch: Any) -> bool:
    """The page raised (an error page) or showed nothing of the secret."""
    try:
        body = fetch()
    except InvalidRequestError:  # touching the column raised (a page answers 500): wanted
        return True
    return SECRET not in body and "secret" not in body


def _rendered(app: Flask, way: str, tache_id: int) -> str:
    if way == "render_tache":
        with app.test_request_context():
            return render_template_string("{{ render_tache(i) }}", i=tache_id)
    if way == "get_or_404":
        with app.test_request_context():
            return str(taches.get_or_404(tache_id).parametres_caches)
    path = {
        "page": f"/taches/{tache_id}",
        "fragment": f"/taches/{tache_id}/status",
        "batch": f"/taches/status?ids={tache_id}",
    }[way]
    return app.test_client().get(path).get_data(as_text=True)


@pytest.mark.parametrize("way", ["page", "fragment", "batch", "render_tache", "get_or_404"])
def test_an_overriding_template_cannot_print_the_hidden_parameters(app: Flask, way: str) -> None:
    _override(app)
    tache_id = make(app)
    assert _hides_the_secret(lambda: _rendered(app, way, tache_id))


def test_json_answers_never_carry_the_hidden_parameters(app: Flask) -> None:
    tache_id = make(app)
    client = app.test_client()
    for path in (
        f"/taches/{tache_id}",
        f"/taches/{tache_id}/status",
        f"/taches/{tache_id}/status.json",
    ):
        response = client.get(path, headers=JSON)
        assert response.status_code == 200
        assert SECRET not in response.get_data(as_text=True)
