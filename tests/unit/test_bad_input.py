"""400, never 500: ids of thousands of digits, JSON nested 100,000 deep, NUL bytes, huge batches.

On every database: PostgreSQL refuses a NUL in text and JSONB, MariaDB's JSON
check any nesting past 31 levels, and each would answer with a driver error.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_taches import Tache
from flask_taches.exceptions import InvalidTache, ParametresNotJSON
from flask_taches.web import status as status_route
from tests.app import db, taches
from tests.web import JSON, METHOD, USERS, make

pytestmark = pytest.mark.taches_config(**USERS)

HUGE = "9" * 5000  # past the 4300 digits int() converts
DEEP = 100_000


@pytest.fixture
def app(any_db_app: Flask) -> Flask:
    return any_db_app


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"v": 1}
    for _ in range(depth - 1):
        value = {"v": value}
    return value


def one_line_error(response: Any) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert isinstance(error, str) and "\n" not in error and len(error) < 200
    return str(error)


@pytest.mark.parametrize(
    "url",
    [
        f"/taches/status?ids={HUGE}",
        f"/taches/status?ids=1,{HUGE}",
        f"/taches/?before={HUGE}",
        f"/taches/?after={HUGE}",
        "/taches/status?signatures=a%00b",
        "/taches/?signature=a%00b",
        "/taches/?owner=a%00b",
        "/taches/?method=a%00b",
        "/taches/?queue=a%00b",
    ],
)
def test_bad_query_strings_answer_400(app: Flask, url: str) -> None:
    make(app, signature="a")
    one_line_error(app.test_client().get(url, headers=JSON))


@pytest.mark.parametrize(
    "path", ["/taches/{id}", "/taches/{id}/status", "/taches/{id}/status.json"]
)
def test_a_path_id_of_thousands_of_digits_is_no_task(app: Flask, path: str) -> None:
    response = app.test_client().get(path.format(id=HUGE), headers=JSON)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        "[" * DEEP + "]" * DEEP,
        '{"ids": ' + "[" * DEEP + "]" * DEEP + "}",
        '{"signatures": [' + "{" * 1000 + "}" * 1000 + "]}",
        '{"ids": [' + "[" * 990 + "]" * 990 + "]}",
        '{"signatures": ["a\\u0000b"]}',
        '{"signatures": ["\\ud800"]}',
        '{"ids": [%s]}' % ("9" * 41),
    ],
    ids=["deep", "deep-ids", "deep-signature", "990-deep-id", "nul", "surrogate", "41-digits"],
)
def test_bad_json_bodies_answer_400(app: Flask, body: str) -> None:
    response = app.test_client().post("/taches/status", data=body, content_type="application/json")
    one_line_error(response)


def test_the_batch_stops_counting_before_parsing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five million ids are counted by string scans and refused before one is parsed."""
    parsed: list[Any] = []
    monkeypatch.setattr(status_route, "parse_id", lambda v: parsed.append(v) or 1)
    client = app.test_client()
    many = ",".join(["1"] * 5_000_000)
    error = one_line_error(client.get(f"/taches/status?ids={many}"))
    assert error == "5000000 ids + 0 signatures: at most 200 (TACHES_BATCH_MAX) in one request"
    assert parsed == []
    posted = client.post("/taches/status", data=f'{{"ids": [{many}]}}', content_type=JSON["Accept"])
    one_line_error(posted)
    assert parsed == []


def count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Tache)) or 0)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"parametres": nested(DEEP)}, ParametresNotJSON),
        ({"parametres": nested(32)}, ParametresNotJSON),
        ({"parametres_caches": {"token": nested(40)}}, ParametresNotJSON),
        ({"parametres": {"a": "x\x00y"}}, ParametresNotJSON),
        ({"parametres": {"a\x00": 1}}, ParametresNotJSON),
        ({"parametres": {"a": ["\ud800"]}}, ParametresNotJSON),
        ({"parametres_caches": {"token": "\x00"}}, ParametresNotJSON),
        ({"signature": "a\x00b"}, InvalidTache),
        ({"queue": "q\x00"}, InvalidTache),
        ({"signature": "\udfff"}, InvalidTache),
    ],
    ids=[
        "deep",
        "32-levels",
        "deep-hidden",
        "nul-value",
        "nul-key",
        "surrogate",
        "nul-hidden",
        "nul-signature",
        "nul-queue",
        "surrogate-signature",
    ],
)
def test_add_refuses_what_a_database_cannot_store(
    app: Flask, options: dict[str, Any], error: type[Exception]
) -> None:
    with app.app_context(), pytest.raises(error) as refused:
        taches.add(METHOD, **options)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    assert count(app) == 0


def test_add_stores_31_levels_on_every_database(app: Flask) -> None:
    with app.app_context():
        tache_id = taches.add(METHOD, parametres=nested(31))
        db.session.expire_all()
        tache = taches.get(tache_id)
        assert tache is not None and tache.parametres == nested(31)
