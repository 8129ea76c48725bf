"""Tasks in an application's tests: eager mode and ``run_pending``, as a user writes them.

The tests drive the sample application's own tasks with plain pytest
fixtures, through the public API only, on a SQLite file (in-memory SQLite
is refused, in one line naming the alternative).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_taches import ConfigurationError, Status, Tache, TachesExtension
from flask_taches.clock import utcnow
from flask_taches.testing import run_pending

REPORT = "sample_app.services:ReportService.build"
DEMO = "sample_app.services:DemoService.demo"
FAIL = "sample_app.services:DemoService.fail"


def sample_app(tmp_path: Path, **config: object) -> Iterator[Flask]:
    from sample_app import create_app, db

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.db'}",
            "TACHES_FOLDER": str(tmp_path / "files"),
            **config,
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def eager_app(tmp_path: Path) -> Iterator[Flask]:
    yield from sample_app(tmp_path, TACHES_EAGER=True)


@pytest.fixture
def lazy_app(tmp_path: Path) -> Iterator[Flask]:
    yield from sample_app(tmp_path)


def test_eager_mode_runs_the_task_at_once_and_records_it(eager_app: Flask) -> None:
    from sample_app import taches

    tache_id = taches.add(REPORT, parametres={"seconds": 0})
    tache = taches.get(tache_id)
    assert tache is not None
    assert tache.status == Status.COMPLETED
    assert tache.result == {"items": 6, "units": 621}
    assert tache.progress is not None and tache.progress["percent"] == 100.0
    assert "Report ready" in [entry["message"] for entry in tache.logs]
    assert tache.attempts == 1 and tache.pid is not None


def test_eager_mode_records_a_failure_and_keeps_the_callers_session(eager_app: Flask) -> None:
    from sample_app import db, taches

    mine = Tache(method=DEMO, signature="kept")
    db.session.add(mine)
    db.session.commit()
    failed = taches.get(taches.add(FAIL, parametres={"seconds": 0}))
    assert failed is not None and failed.status == Status.FAILED
    assert "RuntimeError: the demo failure" in failed.logs[-1]["message"]
    assert mine.signature == "kept", "the caller's objects are still usable"


def test_eager_mode_runs_a_chain_and_a_group_with_their_results(eager_app: Flask) -> None:
    from sample_app import taches

    report = Tache(method=REPORT, parametres={"seconds": 0})
    ids = taches.group(report, Tache(method=DEMO, parametres={"seconds": 0, "steps": 2}), then=DEMO)
    callback = taches.get(ids[-1])
    assert callback is not None and callback.status == Status.COMPLETED
    assert callback.parametres["previous"] == [
        {"items": 6, "units": 621},
        {"items": 2, "seconds": 0.0},
    ]
    _, second = taches.chain(
        Tache(method=REPORT, parametres={"seconds": 0}),
        Tache(method=DEMO, parametres={"seconds": 0, "steps": 1}),
    )
    after = taches.get(second)
    assert after is not None and after.status == Status.COMPLETED
    assert after.parametres["previous"] == {"items": 6, "units": 621}


def test_eager_mode_leaves_an_uncommitted_add_to_run_pending(eager_app: Flask) -> None:
    from sample_app import db, taches

    tache_id = taches.add(REPORT, parametres={"seconds": 0}, commit=False)
    db.session.commit()
    assert taches.get(tache_id).status == Status.TO_RUN  # type: ignore[union-attr]
    assert run_pending(eager_app) == [tache_id]
    assert taches.get(tache_id).status == Status.COMPLETED  # type: ignore[union-attr]


def test_run_pending_runs_every_ready_task_in_claim_order(lazy_app: Flask) -> None:
    from sample_app import taches

    low = taches.add(REPORT, parametres={"seconds": 0})
    high = taches.add(REPORT, parametres={"seconds": 0}, priority=5)
    later = taches.add(REPORT, parametres={"seconds": 0}, run_at=utcnow() + timedelta(hours=1))
    assert taches.get(low).status == Status.TO_RUN  # type: ignore[union-attr]
    assert run_pending(lazy_app) == [high, low]
    assert taches.get(later).status == Status.TO_RUN, "not ready yet"  # type: ignore[union-attr]
    assert run_pending(lazy_app) == []


def test_in_memory_sqlite_is_refused_naming_the_alternative(tmp_path: Path) -> None:
    for uri in ("sqlite://", "sqlite:///:memory:"):
        app = Flask("tests", instance_path=str(tmp_path))
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
        with pytest.raises(ConfigurationError, match=r"in-memory SQLite.*use a file") as refused:
            TachesExtension(app, SQLAlchemy(app))
        assert "\n" not in str(refused.value)
