"""The fault tier's fixtures: private database servers, and the app on them.

``fault_app`` is the test app once per database, as ``any_db_app``, but on
servers of the tier's own (:mod:`.servers`), so that a test may stop, restart
or reconfigure its server without touching the machine's shared ones. Each
test gets a database of its own on them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.conftest import _make_app
from tests.databases import DIALECTS, server_database
from tests.faults.servers import PrivateMariaDB, PrivatePostgres, private_server

Server = PrivatePostgres | PrivateMariaDB


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[Server]:
    with private_server("postgresql") as server:
        yield server


@pytest.fixture(scope="session")
def private_mariadb() -> Iterator[Server]:
    with private_server("mysql") as server:
        yield server


@pytest.fixture(params=DIALECTS)
def fault_dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fault_server(fault_dialect: str, request: pytest.FixtureRequest) -> Server | None:
    """The private server of the test's database; None for SQLite."""
    if fault_dialect == "sqlite":
        return None
    fixture = "private_postgres" if fault_dialect == "postgresql" else "private_mariadb"
    server: Server = request.getfixturevalue(fixture)
    return server


@pytest.fixture
def fault_app(
    fault_dialect: str,
    fault_server: Server | None,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    """The test app on a SQLite file, or on a database of its own on a private server."""
    if fault_server is None:
        url = f"sqlite:///{tmp_path / 'taches.sqlite'}"
        yield from _make_app(url, tmp_path, monkeypatch, request)
        return
    with server_database(fault_server.url()) as database:
        url = database.render_as_string(hide_password=False)
        yield from _make_app(url, tmp_path, monkeypatch, request)
