"""Fixtures shared by every test.

``app`` is parametrized over the three databases where a test asks for
``any_db_app``; ``app`` alone is SQLite (a real file in ``tmp_path``), for tests
where the dialect does not matter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from tests import app as test_app
from tests.databases import (
    DIALECTS,
    MYSQL_ADMIN_URL,
    POSTGRES_ADMIN_URL,
    check_server,
    server_database,
    unreachable,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the shell that runs pytest."""
    for key in list(os.environ):
        if key.startswith(("TACHES_", "FLASK_")):
            monkeypatch.delenv(key)


def _server_url(admin_url: str, dialect: str) -> Iterator[str]:
    try:
        check_server(admin_url)
    except (OperationalError, ImportError) as exc:
        # ImportError: its driver is not installed (a machine with SQLite only).
        unreachable(dialect, exc)
    with server_database(admin_url) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    yield from _server_url(POSTGRES_ADMIN_URL, "postgresql")


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    yield from _server_url(MYSQL_ADMIN_URL, "mysql")


def database_url_for(dialect: str, request: pytest.FixtureRequest, tmp_path) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'taches.sqlite'}"
    fixture = "postgres_url" if dialect == "postgresql" else "mysql_url"
    return str(request.getfixturevalue(fixture))


def _make_app(
    database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    monkeypatch.setenv(test_app.DATABASE_URL_VARIABLE, database_url)
    monkeypatch.setenv(test_app.INSTANCE_PATH_VARIABLE, str(tmp_path / "instance"))
    marker = request.node.get_closest_marker("taches_config")
    config = dict(marker.kwargs) if marker else {}
    app = test_app.create_app(config)
    with app.app_context():
        db = test_app.db
        db.drop_all()
        db.create_all()
        db.session.remove()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        state = app.extensions["taches.state"]
        if state.built_store is not None:
            state.built_store.engine.dispose()
        db.engine.dispose()


@pytest.fixture
def app(
    tmp_path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    """The test app on a real SQLite file."""
    yield from _make_app(f"sqlite:///{tmp_path / 'taches.sqlite'}", tmp_path, monkeypatch, request)


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def any_db_app(
    dialect: str, tmp_path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    """The test app, once per database: SQLite file, PostgreSQL, MariaDB."""
    url = database_url_for(dialect, request, tmp_path)
    yield from _make_app(url, tmp_path, monkeypatch, request)


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


@pytest.fixture
def db_ctx(any_db_app: Flask) -> Iterator[Flask]:
    with any_db_app.app_context():
        yield any_db_app


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "taches_config(**settings): app.config for the app fixtures")
    config.addinivalue_line(
        "markers", "dialects(*names): run a test on these databases only (of sqlite, ...)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out, rather than skip, the database variants a ``dialects`` test is not for.

    A skip would read as "PostgreSQL (or MariaDB) untested" in CI's summary; a
    LISTEN test on SQLite is not a test that did not run, it is no test at all.
    """
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("dialects")
        params = getattr(item, "callspec", None)
        # "fault_dialect": the fault tier's servers are its own (tests/faults).
        found = params.params if params is not None else {}
        dialect = found.get("dialect", found.get("fault_dialect"))
        if marker is not None and dialect is not None and dialect not in marker.args:
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
    if config.pluginmanager.hasplugin("xdist"):
        _group_for_xdist(items)


#: Tests that share what one machine has once run in one xdist worker, one after
#: the other: the fault tier's private servers, kills and namespaces; Chromium.
XDIST_GROUPS = ("faults", "browser")


def _group_for_xdist(items: list[pytest.Item]) -> None:
    """With ``-n 2 --dist loadgroup``, each group runs in one worker (see XDIST_GROUPS)."""
    for item in items:
        group = next((name for name in XDIST_GROUPS if item.get_closest_marker(name)), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
