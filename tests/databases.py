"""Real databases for the tests: a SQLite file, PostgreSQL and MariaDB/MySQL.

Each test session gets its own database on each server (so parallel runs
never collide) and drops it at the end. In CI (``CI`` set) an unreachable
server fails the run; on a workstation the tests on it are skipped with the
reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

POSTGRES_ADMIN_URL = os.environ.get(
    "FT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_ADMIN_URL = os.environ.get("FT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

DIALECTS = ("sqlite", "postgresql", "mysql")


def unreachable(dialect: str, exc: BaseException) -> None:
    """Skip the tests on ``dialect`` (fail them in CI): its server or driver is missing."""
    what = "driver missing" if isinstance(exc, ImportError) else "server unreachable"
    message = f"{dialect} {what}: {str(exc).splitlines()[0]}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def check_server(admin_url: str) -> None:
    """Raise ``OperationalError`` when the server does not answer."""
    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


@contextmanager
def server_database(admin_url: str) -> Iterator[URL]:
    """CREATE a database named for this run, yield its URL, DROP it after."""
    admin = make_url(admin_url)
    name = f"taches_test_{uuid.uuid4().hex[:10]}"
    # No pool: a fault test may restart the server between the CREATE and the DROP.
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        yield admin.set(database=name)
    finally:
        try:
            with engine.connect() as conn:
                if admin.get_backend_name() == "postgresql":
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        finally:
            engine.dispose()
