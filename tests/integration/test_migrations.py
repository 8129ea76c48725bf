"""The Alembic branch, through real ``flask db`` commands in a throw-away project.

Each test writes a small application (Flask-SQLAlchemy + Flask-Migrate +
flask-taches) into ``tmp_path`` and drives it with ``flask db init`` /
``upgrade`` / ``downgrade`` subprocesses, as a user would, on an empty
database: a new SQLite file, or a new PostgreSQL or MariaDB database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import JSON, MetaData, create_engine, inspect, text
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from flask_taches.migrations import VERSIONS_DIR
from flask_taches.models import ALL_TABLES, UTCDateTime, taches_table
from tests.databases import (
    DIALECTS,
    MYSQL_ADMIN_URL,
    POSTGRES_ADMIN_URL,
    check_server,
    server_database,
    unreachable,
)

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 120  # seconds, for one flask subprocess

PROJECT = '''
"""A user's application, as the README shows it."""
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from flask_taches import TachesExtension

db = SQLAlchemy()
migrate = Migrate()
taches = TachesExtension()
{models}

def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["PROJECT_DATABASE_URL"]
    db.init_app(app)
    if os.environ.get("MIGRATE_FIRST") == "1":
        migrate.init_app(app, db)
        taches.init_app(app, db)
    else:
        taches.init_app(app, db)
        migrate.init_app(app, db)
    return app
'''

NOTE_MODEL = """

class Note(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    text = db.Column(db.String(80), nullable=False)
"""


class Project:
    """A temporary application directory and the ``flask`` commands run in it."""

    def __init__(self, root: Path, database_url: str, *, migrate_first: bool) -> None:
        self.root = root
        self.database_url = database_url
        self.migrate_first = migrate_first
        self.write(models="")

    def write(self, *, models: str) -> None:
        (self.root / "project.py").write_text(PROJECT.format(models=models))

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PROJECT_DATABASE_URL": self.database_url,
            "MIGRATE_FIRST": "1" if self.migrate_first else "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "project:create_app", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result


@pytest.fixture
def empty_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a database that holds nothing yet."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'project.sqlite'}"
        return
    admin_url = POSTGRES_ADMIN_URL if dialect == "postgresql" else MYSQL_ADMIN_URL
    try:
        check_server(admin_url)
    except OperationalError as exc:
        unreachable(dialect, exc)
    with server_database(admin_url) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def engine(empty_database: str) -> Iterator[Engine]:
    engine = create_engine(empty_database)
    yield engine
    engine.dispose()


def model_metadata() -> MetaData:
    metadata = MetaData()
    for table in ALL_TABLES:
        table.to_metadata(metadata)
    return metadata


def schema_differences(engine: Engine) -> list[object]:
    """What autogenerate would write to turn the database into the model's schema."""
    with engine.connect() as conn:
        # compare_type is Flask-Migrate's default, so this is what `flask db migrate` sees.
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, model_metadata()))


def assert_dialect_types(engine: Engine) -> None:
    """What compare_type does not check: DATETIME precision on MySQL, JSONB on PostgreSQL."""
    columns = {c["name"]: c for c in inspect(engine).get_columns("taches")}
    datetimes = [c.name for c in taches_table.columns if isinstance(c.type, UTCDateTime)]
    jsons = [c.name for c in taches_table.columns if isinstance(c.type, JSON)]
    assert datetimes and jsons  # else the checks below would check nothing
    if engine.dialect.name in ("mysql", "mariadb"):
        for name in datetimes:
            column_type = columns[name]["type"]
            assert isinstance(column_type, mysql.DATETIME), (name, column_type)
            assert column_type.fsp == 6, (name, column_type)
    if engine.dialect.name == "postgresql":
        for name in jsons:
            assert isinstance(columns[name]["type"], postgresql.JSONB), (name, columns[name])


def assert_model_schema(engine: Engine) -> None:
    assert schema_differences(engine) == []
    assert_dialect_types(engine)
    inspector = inspect(engine)
    indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("taches")}
    assert indexes == {ix.name: [c.name for c in ix.columns] for ix in taches_table.indexes}
    (foreign_key,) = inspector.get_foreign_keys("taches")
    assert foreign_key["constrained_columns"] == ["next_id"]
    assert foreign_key["referred_table"] == "taches"
    assert foreign_key["referred_columns"] == ["id"]
    assert foreign_key["options"].get("ondelete") == "SET NULL"


def assert_fencing_and_claim_schema(engine: Engine) -> None:
    """What the inspector does not report everywhere: AUTOINCREMENT, DESC index columns."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_master")).all())
        assert "AUTOINCREMENT" in sql["taches"]  # no id reused after a delete
        assert "priority DESC" in sql["ix_taches_ready"]
    elif engine.dialect.name == "postgresql":
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("taches")}
        assert indexes["ix_taches_ready"].get("column_sorting") == {"priority": ("desc",)}
    else:
        with engine.connect() as conn:
            rows = conn.execute(text("SHOW INDEX FROM taches WHERE Key_name = 'ix_taches_ready'"))
            collation = {row.Column_name: row.Collation for row in rows}
        assert collation == {"status": "A", "priority": "D", "run_at": "A", "id": "A"}


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@pytest.mark.parametrize("dialect", DIALECTS)
def test_flask_db_upgrade_builds_the_model_schema_and_downgrade_removes_it(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=False)
    project.flask("db", "init")
    assert table_names(engine) == set()

    project.flask("db", "upgrade")

    assert "taches" in table_names(engine)
    assert_model_schema(engine)
    assert_fencing_and_claim_schema(engine)
    # The shipped revision is a base of its own, on the branch labelled taches.
    history = project.flask("db", "history").stdout
    assert "<base> -> taches_0001 (taches)" in history
    assert history.count("(head)") == 1, "the extension's revisions have one head"

    project.flask("db", "downgrade", "taches@base")  # every revision of the branch

    assert table_names(engine) == {"alembic_version"} or table_names(engine) == set()


@pytest.mark.parametrize("dialect", ["sqlite"])
@pytest.mark.parametrize("migrate_first", [True, False], ids=["migrate-first", "taches-first"])
def test_wiring_does_not_depend_on_the_order_of_init_app(
    dialect: str, migrate_first: bool, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=migrate_first)
    project.flask("db", "init")

    project.flask("db", "upgrade")

    assert "taches" in table_names(engine)
    assert_model_schema(engine)


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_the_applications_own_revisions_go_to_its_own_folder(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=True)
    project.flask("db", "init")
    project.flask("db", "upgrade")
    shipped = sorted(p.name for p in VERSIONS_DIR.glob("*.py"))

    # Nothing changed yet: autogenerate writes nothing (no spurious taches diff).
    project.flask("db", "migrate", "-m", "nothing")
    assert list((tmp_path / "migrations" / "versions").glob("*.py")) == []

    project.write(models=NOTE_MODEL)
    project.flask("db", "migrate", "-m", "notes")
    project.flask("db", "revision", "-m", "by hand")

    own = {p.name.split("_", 1)[1] for p in (tmp_path / "migrations" / "versions").glob("*.py")}
    assert own == {"notes.py", "by_hand.py"}
    notes = next((tmp_path / "migrations" / "versions").glob("*_notes.py")).read_text()
    assert "op.create_table('note'" in notes or 'op.create_table("note"' in notes
    assert "taches" not in notes.split("def upgrade", 1)[1].split("def downgrade", 1)[0]
    assert sorted(p.name for p in VERSIONS_DIR.glob("*.py")) == shipped

    project.flask("db", "upgrade")
    assert {"note", "taches"} <= table_names(engine)


def test_shipped_revisions_do_not_import_the_package() -> None:
    """A revision must keep creating its own schema whatever later releases change."""
    for revision in VERSIONS_DIR.glob("*.py"):
        assert "flask_taches" not in revision.read_text(), revision.name


def test_migrations_dir_prints_the_shipped_folder(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["taches", "migrations-dir"])

    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()) == VERSIONS_DIR
    assert sorted(p.name for p in VERSIONS_DIR.glob("taches_*.py"))
