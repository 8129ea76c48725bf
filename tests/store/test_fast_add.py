"""add()'s fast path (store/fast_add.py): taken only where nothing can tell it from the plain one.

Each test runs on every database; MySQL/MariaDB have no RETURNING, so there
the plain path is always taken.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_taches import Tache
from flask_taches.clock import utcnow
from flask_taches.store.fast_add import FastAdd
from tests.app import db, taches
from tests.store.helpers import row

ADD = "tests.tasks:add"


@pytest.fixture
def fast_ids(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each call of the fast path returned (None: it left the row to the plain path)."""
    returned: list[int | None] = []
    real = FastAdd.insert

    def spying(self: FastAdd, *args: Any, **kwargs: Any) -> int | None:
        returned.append(real(self, *args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(FastAdd, "insert", spying)
    return returned


def stored(tache_id: int) -> dict[str, Any]:
    found = row(tache_id)
    for key in ("id", "created_at"):
        found.pop(key)
    return found


#: One run_at for every add of a test: computed per add, two adds could straddle a second.
RUN_AT = utcnow().replace(microsecond=0) + timedelta(hours=1)


def add_with_every_option() -> int:
    run_at = RUN_AT
    return taches.add(
        ADD,
        parametres={"a": 1, "b": [1, "é"]},
        parametres_caches={"secret": "x"},
        priority=3,
        queue="mail",
        run_at=run_at,
        max_attempts=4,
        timeout=12.5,
        signature="sig",
        owner="alice",
    )


def test_a_lone_add_stores_what_the_plain_path_stores(
    db_ctx: Flask, fast_ids: list[int | None]
) -> None:
    fast = add_with_every_option()
    db.session.execute(select(1))  # a transaction open: the plain path
    plain = add_with_every_option()
    db.session.remove()
    supported = db.engine.dialect.insert_returning
    assert fast_ids == [fast if supported else None]
    assert stored(fast) == stored(plain)
    assert taches.get(fast).status == "TO_RUN"


def test_work_waiting_in_the_session_is_committed_with_the_task(
    db_ctx: Flask, fast_ids: list[int | None]
) -> None:
    pending = Tache(method=ADD, parametres={"a": 2})
    db.session.add(pending)  # no transaction yet, but the next commit flushes it
    added = taches.add(ADD)
    pending_id = pending.id
    db.session.remove()
    assert fast_ids == []
    assert row(added)["status"] == "TO_RUN"
    assert pending_id is not None and row(pending_id)["parametres"] == {"a": 2}


def test_a_tache_object_or_commit_false_takes_the_plain_path(
    db_ctx: Flask, fast_ids: list[int | None]
) -> None:
    obj = Tache(method=ADD)
    taches.add(obj)
    assert obj in db.session
    later = taches.add(ADD, commit=False)
    db.session.rollback()
    assert fast_ids == []
    assert taches.get(later) is None
