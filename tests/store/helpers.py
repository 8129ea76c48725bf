"""What the store suite shares: the app's store, a row as stored, tasks to claim.

Every test of ``tests/store`` runs once per database (the ``db_ctx`` fixture
of ``tests/conftest.py``) and drives the store's public verbs; rows are read
and edited with plain Core statements, as another process would see them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.models import taches_table
from flask_taches.state import app_state
from flask_taches.store import Claimed, Store
from tests.app import db, taches

NOOP = "tests.manager_tasks:noop"
HOST = "claim-test-host"


def store() -> Store:
    return app_state().store


def row(tache_id: int) -> dict[str, Any]:
    with store().read() as conn:
        found = (
            conn.execute(select(taches_table).where(taches_table.c.id == tache_id)).mappings().one()
        )
    return dict(found)


def messages(tache_id: int) -> list[str]:
    return [entry["message"] for entry in row(tache_id)["logs"]]


def set_columns(tache_id: int, **values: object) -> None:
    with store().write() as conn:
        conn.execute(update(taches_table).where(taches_table.c.id == tache_id).values(**values))


def add(n: int = 1, **options: object) -> list[int]:
    """Add ``n`` no-op tasks through the service, as an application does."""
    ids = [taches.add(NOOP, **options) for _ in range(n)]
    db.session.remove()
    return ids


def chain(*taches_: Any) -> list[int]:
    ids = taches.chain(*taches_)
    db.session.remove()
    return ids


def claim_one_task(**options: object) -> Claimed:
    """Add one task and claim it on ``HOST``: a RUNNING attempt to play with."""
    (tache_id,) = add(1, **options)
    (claimed,) = store().claim_batch(1, max_running=100, hostname=HOST)
    assert claimed.id == tache_id
    return claimed


def new_row(n: int, **values: Any) -> dict[str, Any]:
    """A row as the service builds it, ``parametres`` numbering it ``n``."""
    now = utcnow()
    return {
        "method": NOOP,
        "parametres": {"n": n},
        "status": Status.TO_RUN.value,
        "logs": [],
        "created_at": now,
        "run_at": now,
        "priority": 0,
        "queue": "default",
        "attempts": 0,
        "max_attempts": 1,
        **values,
    }
