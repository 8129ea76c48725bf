"""``TachesExtension`` wiring: registration, per-app state, the table in ``db.metadata``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import inspect, select
from sqlalchemy.orm import Mapped, mapped_column

from flask_taches import ConfigurationError, Status, Tache, TachesExtension
from flask_taches.state import AppState

#: A task for these tests (``tests`` is in TACHES_ALLOWED_MODULES below).
NOOP = "tests.unit.test_extension:noop"

#: Every column DESIGN.md lists for the ``taches`` table.
CONTRACT_COLUMNS = {
    "id", "method", "parametres", "parametres_caches", "signature", "owner", "fichier",
    "status", "result", "logs", "progress", "created_at", "started_at", "ended_at",
    "run_at", "priority", "queue", "attempts", "max_attempts", "timeout", "pid",
    "hostname", "heartbeat_at", "next_id",
}  # fmt: skip


def noop() -> None:
    """Does nothing; only ever added, never run, here."""


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    """Build apps on their own SQLite files; dispose of every engine afterwards."""
    apps: list[Flask] = []

    def factory(name: str, db: SQLAlchemy | None = None, **config: object) -> Flask:
        app = Flask("tests", instance_path=str(tmp_path / name / "instance"))
        app.config.update(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / name}.sqlite",
            TACHES_ALLOWED_MODULES=["tests"],
            **config,
        )
        if db is not None:
            db.init_app(app)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        state = app.extensions.get("taches.state")
        if state is not None and state.built_store is not None:
            state.built_store.engine.dispose()
        sqlalchemy = app.extensions.get("sqlalchemy")
        if sqlalchemy is not None:
            with app.app_context():
                sqlalchemy.session.remove()
                sqlalchemy.engine.dispose()


def test_init_app_registers_the_extension_and_its_parts(make_app: AppFactory) -> None:
    db = SQLAlchemy()
    taches = TachesExtension()
    app = make_app("one", db, TACHES_URL_PREFIX="/jobs")

    taches.init_app(app, db)

    assert app.extensions["taches"] is taches
    assert isinstance(app.extensions["taches.state"], AppState)
    assert app.extensions["taches.state"].db is db
    assert "taches" in app.cli.commands
    assert "taches" in app.blueprints
    rules = [r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("taches.")]
    assert rules
    assert all(rule.startswith("/jobs/") for rule in rules)
    assert {"render_tache", "taches_script"} <= set(app.jinja_env.globals)
    assert not hasattr(taches, "app")  # reached through current_app, never kept


def test_init_app_twice_on_one_app_raises(make_app: AppFactory) -> None:
    db = SQLAlchemy()
    app = make_app("one", db)
    taches = TachesExtension(app, db)

    with pytest.raises(RuntimeError, match="already registered"):
        taches.init_app(app, db)
    with pytest.raises(RuntimeError, match="already registered"):
        TachesExtension().init_app(app, db)


def test_the_app_and_db_constructor_form(make_app: AppFactory) -> None:
    db = SQLAlchemy()
    app = make_app("one", db)

    taches = TachesExtension(app, db)

    assert app.extensions["taches"] is taches
    with app.app_context():
        assert taches.db() is db


def test_db_is_found_in_app_extensions(make_app: AppFactory) -> None:
    db = SQLAlchemy()
    app = make_app("one", db)

    taches = TachesExtension(app)

    assert app.extensions["sqlalchemy"] is db
    with app.app_context():
        assert taches.db() is db


def test_without_flask_sqlalchemy_init_app_says_what_to_do(make_app: AppFactory) -> None:
    app = make_app("one")

    with pytest.raises(ConfigurationError, match=r"db\.init_app"):
        TachesExtension(app)
    assert "taches" not in app.extensions


def test_the_table_is_in_db_metadata_for_create_all(make_app: AppFactory) -> None:
    db = SQLAlchemy()

    class Invoice(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)

    app = make_app("one", db)
    TachesExtension(app, db)

    with app.app_context():
        db.create_all()
        inspector = inspect(db.engine)
        assert {"taches", Invoice.__tablename__} <= set(inspector.get_table_names())
        columns = {column["name"] for column in inspector.get_columns("taches")}
        indexes = {index["name"] for index in inspector.get_indexes("taches")}
    assert columns >= CONTRACT_COLUMNS
    assert {"ix_taches_ready", "ix_taches_signature", "ix_taches_owner"} <= indexes


def test_two_apps_in_one_process_share_no_state(make_app: AppFactory) -> None:
    db = SQLAlchemy()
    taches = TachesExtension()
    first = make_app("first", db, TACHES_MAX=2, TACHES_DEFAULT_QUEUE="red")
    second = make_app("second", db, TACHES_MAX=8, TACHES_DEFAULT_QUEUE="blue")
    taches.init_app(first, db)
    taches.init_app(second, db)
    for app in (first, second):
        with app.app_context():
            db.create_all()

    with first.app_context():
        first_id = taches.add(NOOP, signature="shared-signature")
        first_store = taches.store()
        assert taches.get(first_id).queue == "red"  # type: ignore[union-attr]
    with second.app_context():
        assert taches.latest("shared-signature") is None
        assert taches.get(first_id) is None
        second_id = taches.add(NOOP)
        second_tache = taches.get(second_id)
        assert second_tache is not None
        assert second_tache.queue == "blue"
        assert second_tache.status == Status.TO_RUN
        second_store = taches.store()
    with first.app_context():
        assert [t.id for t in db.session.scalars(select(Tache))] == [first_id]

    assert first.config["TACHES_MAX"] == 2
    assert second.config["TACHES_MAX"] == 8
    assert first_store is not second_store
    assert first_store.engine.url != second_store.engine.url
    assert first.extensions["taches.state"] is not second.extensions["taches.state"]
