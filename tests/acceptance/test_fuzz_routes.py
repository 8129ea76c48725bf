"""The blueprint's routes under any input: never a 5xx, never another owner's task.

Bob asks, with whatever hypothesis draws (ids of any length, keyset bounds,
signatures, filters, JSON bodies, GET or POST, any ``Accept``), a database
seeded with his tasks, a shared one and Alice's. No answer may be a 5xx, and
none may carry Alice's tasks: not their ids, not their parameters, and
no answer carries anyone's ``parametres_caches``. Alice's tasks are left as
they were. Bounded (``max_examples``) and derandomized, for CI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_taches import Tache
from tests.app import db, taches
from tests.web import METHOD, SECRET, USERS, as_user, csrf_token

pytestmark = pytest.mark.taches_config(**USERS)

ALICE_MARK = "alice-private-5d1f"  # in Alice's parameters: no answer to Bob may carry it
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_ID_ATTRIBUTE = re.compile(r'data-(?:tache-)?id="(\d+)"|"id":\s*(\d+)')


class Seeded:
    """The fuzzed app, its tasks by owner, and Bob's client (with a valid CSRF token)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        with app.app_context():
            self.alice = [
                taches.add(
                    METHOD,
                    owner="alice",
                    signature=sig,
                    parametres={"mark": ALICE_MARK},
                    parametres_caches={"secret": SECRET},
                )
                for sig in ("shared-sig", "alice-sig", "shared-sig")
            ]
            self.bob = [
                taches.add(METHOD, owner="bob", signature=s, parametres_caches={"secret": SECRET})
                for s in ("shared-sig", "bob-sig")
            ]
            self.shared = [taches.add(METHOD, owner=None, signature="shared-sig")]
            self.alice_rows = self.rows(self.alice)
        self.client = app.test_client()
        self.token = csrf_token(self.client, **as_user("bob"))

    def rows(self, ids: list[int]) -> list[tuple[Any, ...]]:
        with self.app.app_context():
            db.session.expire_all()
            found = [db.session.get(Tache, i) for i in ids]
            return [(t.id, t.status, t.cancel_requested_at) for t in found if t is not None]

    @property
    def known_ids(self) -> list[int]:
        return [*self.alice, *self.bob, *self.shared]


@pytest.fixture
def seeded(any_db_app: Flask) -> Iterator[Seeded]:
    world = Seeded(any_db_app)
    yield world
    assert world.rows(world.alice) == world.alice_rows, "Alice's tasks were changed"


def ids_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text("0123456789", min_size=1, max_size=6000),
        st.text(max_size=30),
        st.sampled_from(["", "0", "-0", "1.5", "²", " 1 ", "1,,2", "\x00", "1e9"]),
    )


def text_values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.sampled_from(["shared-sig", "alice-sig", "alice", "BOB", "bob", "a\x00b", "%", "'"]),
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        text_values(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=3),
    )


def headers() -> st.SearchStrategy[dict[str, str]]:
    accept = st.sampled_from(["application/json", "text/html", "*/*", "text/plain", "", "a/b;q=x"])
    fetch = st.sampled_from([{}, {"X-Requested-With": "fetch"}])
    return st.builds(lambda a, f: {**as_user("bob"), "Accept": a, **f}, accept, fetch)


def check_answer(world: Seeded, response: Any) -> None:
    """No 5xx; nothing of Alice's tasks, and no hidden parameters, in the body."""
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    body = response.get_data(as_text=True)
    assert ALICE_MARK not in body
    assert SECRET not in body
    shown = {int(a or b) for a, b in _ID_ATTRIBUTE.findall(body)}
    assert not shown & set(world.alice), f"Alice's task(s) {shown & set(world.alice)} shown"


TASK_PATHS = ("", "/status", "/status.json", "/fichier", "/cancel", "/restart", "/delete")


@FUZZ
@given(data=st.data())
def test_the_routes_of_one_task(seeded: Seeded, data: st.DataObject) -> None:
    tache_id = data.draw(st.one_of(st.sampled_from(seeded.known_ids).map(str), ids_text()))
    suffix = data.draw(st.sampled_from(TASK_PATHS))
    method = data.draw(st.sampled_from(["GET", "POST"]))
    form = data.draw(st.sampled_from([{}, {"csrf_token": seeded.token}, {"csrf_token": "x"}]))
    url = f"/taches/{quote(tache_id, safe='')}{suffix}"
    response = seeded.client.open(url, method=method, data=form, headers=data.draw(headers()))
    with response:
        check_answer(seeded, response)


@FUZZ
@given(
    args=st.lists(
        st.tuples(
            st.sampled_from(["status", "method", "signature", "owner", "queue", "before", "after"]),
            st.one_of(text_values(), ids_text()),
        ),
        max_size=4,
    ),
    request_headers=headers(),
)
def test_the_dashboard(
    seeded: Seeded, args: list[tuple[str, str]], request_headers: dict[str, str]
) -> None:
    response = seeded.client.get(f"/taches/?{urlencode(args)}", headers=request_headers)
    check_answer(seeded, response)


@FUZZ
@given(
    ids=st.lists(st.one_of(ids_text(), st.sampled_from([str(i) for i in range(1, 8)])), max_size=5),
    signatures=st.lists(text_values(), max_size=4),
    how=st.sampled_from(["query", "form", "json"]),
    body=st.one_of(st.none(), json_values()),
    request_headers=headers(),
)
def test_the_batch(
    seeded: Seeded,
    ids: list[str],
    signatures: list[str],
    how: str,
    body: Any,
    request_headers: dict[str, str],
) -> None:
    fields = {"ids": ",".join(ids), "signatures": ",".join(signatures)}
    client: FlaskClient = seeded.client
    if how == "query":
        response = client.get(f"/taches/status?{urlencode(fields)}", headers=request_headers)
    elif how == "form":
        response = client.post("/taches/status", data=fields, headers=request_headers)
    else:
        payload = body if body is not None else {"ids": ids, "signatures": signatures}
        response = client.post("/taches/status", json=payload, headers=request_headers)
    check_answer(seeded, response)
    if response.status_code == 200:
        data = response.get_json()
        assert all(t["owner"] in ("bob", None) for t in data["taches"])
