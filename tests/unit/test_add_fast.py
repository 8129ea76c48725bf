"""The fast path of add(): Core INSERTs, ids in order, checks cached per app, one wake-up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_taches import (
    MethodNotFound,
    MethodRefused,
    ParametresNotJSON,
    Status,
    Tache,
    methods,
)
from flask_taches.models import taches_table
from flask_taches.service import json_values
from flask_taches.store.postgresql import CHANNEL
from tests import app as test_app
from tests.app import db, taches

if TYPE_CHECKING:
    import psycopg

ADD = "tests.tasks:add"
MANY = 2345  # rows: more than two insertmanyvalues pages of 1000


def rows(ids: list[int] | None = None) -> list[dict[str, Any]]:
    query = select(taches_table).order_by(taches_table.c.id)
    if ids is not None:
        query = query.where(taches_table.c.id.in_(ids))
    with taches.store().read() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def count() -> int:
    with taches.store().read() as conn:
        return int(conn.execute(select(func.count()).select_from(taches_table)).scalar_one())


@pytest.fixture
def locate_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every method the check really imports and walks (the cache's misses)."""
    calls: list[str] = []
    real = methods.locate

    def counting(method: str, allowed: Any = None) -> Any:
        calls.append(method)
        return real(method, allowed)

    monkeypatch.setattr(methods, "locate", counting)
    return calls


# -- ids, order, objects ----------------------------------------------------------------------


def test_add_many_sets_every_id_in_order(db_ctx: Flask) -> None:
    objects = [Tache(method=ADD, parametres={"i": i}) for i in range(0, MANY, 3)]
    given: list[Tache | str] = []
    for i in range(MANY):
        given.append(objects[i // 3] if i % 3 == 0 else ADD)
    ids = taches.add_many(given)
    assert len(ids) == len(set(ids)) == MANY
    assert [t.id for t in objects] == ids[::3]
    stored = {r["id"]: r for r in rows()}
    assert [stored[i]["parametres"] for i in ids[::3]] == [{"i": i} for i in range(0, MANY, 3)]
    assert all(stored[i]["parametres"] == {} for n, i in enumerate(ids) if n % 3)
    assert {r["status"] for r in stored.values()} == {Status.TO_RUN}


def test_other_columns_a_tache_carries_are_stored_and_null_elsewhere(db_ctx: Flask) -> None:
    carrying = Tache(method=ADD, progress={"step": 1}, hostname="here")
    ids = taches.add_many([ADD, carrying, ADD])
    stored = rows(ids)
    assert [r["progress"] for r in stored] == [None, {"step": 1}, None]
    assert [r["hostname"] for r in stored] == [None, "here", None]
    with taches.store().read() as conn:
        nulls = select(func.count()).where(taches_table.c.progress.is_(None))
        assert conn.execute(nulls).scalar_one() == 2, "SQL NULL, not JSON null"


def test_a_tache_object_is_persistent_in_the_session_after_add(db_ctx: Flask) -> None:
    tache = Tache(method=ADD, parametres={"a": 1})
    db.session.add(tache)  # already pending: add() inserts it once, not a second time
    tache_id = taches.add(tache, queue="q1")
    assert tache.id == tache_id
    assert tache in db.session
    assert taches.get(tache_id) is tache
    assert (tache.queue, tache.status, tache.parametres) == ("q1", Status.TO_RUN, {"a": 1})
    db.session.commit()
    assert count() == 1


def test_a_refused_row_in_add_many_leaves_objects_new_and_no_row(db_ctx: Flask) -> None:
    first = Tache(method=ADD)
    with pytest.raises(ParametresNotJSON):
        taches.add_many([first, Tache(method=ADD, parametres={"a": (1, 2)})])
    assert first.id is None
    assert count() == 0
    assert taches.add(first) == first.id


def test_a_rolled_back_commit_leaves_the_object_new(
    db_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    tache = Tache(method=ADD)

    def broken_commit() -> None:
        raise RuntimeError("commit failed")

    monkeypatch.setattr(db.session(), "commit", broken_commit)
    with pytest.raises(RuntimeError, match="commit failed"):
        taches.add(tache)
    monkeypatch.undo()
    assert tache.id is None
    assert tache not in db.session
    assert count() == 0


def test_add_without_commit_joins_the_callers_transaction(db_ctx: Flask) -> None:
    kept = taches.add(ADD, commit=False)
    dropped = Tache(method=ADD)
    taches.add_many([dropped, ADD], commit=False)
    db.session.rollback()
    assert count() == 0
    kept = taches.add(ADD, commit=False)
    chained = taches.chain(ADD, ADD, commit=False)
    db.session.commit()
    assert [r["id"] for r in rows()] == [kept, *chained]
    assert [r["next_id"] for r in rows(chained)] == [chained[1], None]


def test_add_many_of_nothing_saves_nothing(db_ctx: Flask) -> None:
    assert taches.add_many([]) == []
    assert count() == 0


# -- the method check cache -------------------------------------------------------------------


def test_a_method_is_imported_once_per_app(app_ctx: Flask, locate_calls: list[str]) -> None:
    taches.add(ADD)
    taches.add_many([ADD] * 50)
    assert locate_calls == [ADD]
    with pytest.raises(MethodNotFound):
        taches.add("tests.tasks:nowhere")
    with pytest.raises(MethodNotFound):
        taches.add("tests.tasks:nowhere")
    assert locate_calls == [ADD, "tests.tasks:nowhere", "tests.tasks:nowhere"], "misses not kept"


def test_the_cache_follows_the_allowlist(app_ctx: Flask, locate_calls: list[str]) -> None:
    taches.add(ADD)
    app_ctx.config["TACHES_ALLOWED_MODULES"] = ["bench"]
    with pytest.raises(MethodRefused):
        taches.add(ADD)
    app_ctx.config["TACHES_ALLOWED_MODULES"] = ["tests.tasks", "tests"]
    taches.add(ADD)
    assert locate_calls == [ADD, ADD]
    assert count() == 2


def test_the_cache_is_per_app(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    other = test_app.create_app({"TACHES_ALLOWED_MODULES": ["bench"]})
    try:
        with app.app_context():
            taches.add(ADD)
        with other.app_context(), pytest.raises(MethodRefused):
            taches.add(ADD)
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
    assert taches.state(app).checked_methods is not taches.state(other).checked_methods


def test_the_cache_starts_over_when_full() -> None:
    checked = methods.MethodCheck(limit=2)
    for method in ("tests.tasks:add", "tests.tasks:raises", "tests.tasks:chatty"):
        checked.check(method, ["tests"])
    with pytest.raises(MethodRefused):
        checked.check("tests.tasks:add", ["bench"])
    with pytest.raises(MethodNotFound):
        checked.check(None, ["tests"])  # type: ignore[arg-type]


# -- the quick JSON check ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, True, "x", {"b": []}]},
        {"nested": {"deep": [[[[{"k": -0.0}]]]]}},
        {"enum": Status.TO_RUN},  # a str subclass: the full check says it survives
    ],
)
def test_json_values_that_survive_are_accepted(value: dict[str, Any]) -> None:
    assert json_values.json_object("parametres", value) is value


def nested(levels: int) -> dict[str, Any]:
    """A JSON object ``levels`` deep (the object itself is level 1)."""
    value: dict[str, Any] = {"v": 1}
    for _ in range(levels - 1):
        value = {"v": value}
    return value


def test_json_as_deep_as_every_database_stores_is_accepted_and_no_deeper() -> None:
    deepest = nested(json_values.JSON_MAX_DEPTH)
    assert json_values.json_object("parametres", deepest) is deepest
    with pytest.raises(ParametresNotJSON, match="nested deeper than"):
        json_values.json_object("parametres", nested(json_values.JSON_MAX_DEPTH + 10))


@pytest.mark.parametrize(
    "value",
    [
        {"a": (1, 2)},
        {"a": [1, {"b": float("inf")}]},
        {"a": {2: "int key"}},
        {"a": b"bytes"},
    ],
    ids=["tuple", "inf", "int-key", "bytes"],
)
def test_json_values_that_change_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ParametresNotJSON):
        json_values.json_object("parametres", value)


def test_a_cycle_is_refused() -> None:
    value: dict[str, Any] = {}
    value["self"] = [value]
    with pytest.raises(ParametresNotJSON):
        json_values.json_object("parametres", value)


# -- one wake-up per call on PostgreSQL ------------------------------------------------------


@pytest.fixture
def listening(db_ctx: Flask, dialect: str) -> Iterator[psycopg.Connection[Any]]:
    import psycopg  # here: the unit tier runs where only SQLite is installed

    assert dialect == "postgresql", "NOTIFY is PostgreSQL's: mark the test dialects('postgresql')"
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def received(listener: psycopg.Connection[Any]) -> list[str]:
    """The payloads committed so far: an end marker, sent last, closes the list."""
    import psycopg

    with psycopg.connect(listener.info.dsn, autocommit=True) as other:
        other.execute("SELECT pg_notify(%s, 'end')", (CHANNEL,))
    payloads = []
    for notify in listener.notifies():
        if notify.payload == "end":
            return payloads
        payloads.append(notify.payload)
    return payloads


@pytest.mark.dialects("postgresql")
def test_one_notify_per_call_and_queue(listening: psycopg.Connection[Any]) -> None:
    taches.add(ADD)
    assert received(listening) == ["default"]
    taches.add_many([Tache(method=ADD, queue="q1") for _ in range(1500)] + [ADD] * 10)
    assert sorted(received(listening)) == ["default", "q1"]
    taches.add(ADD, commit=False)
    db.session.rollback()
    taches.chain(ADD, Tache(method=ADD, queue="later"))
    assert received(listening) == ["default"], "no wake-up for a rolled back or WAITING task"
