"""The extension's own Alembic history, through real ``flask`` commands in a throw-away project.

Each test writes a small application (Flask-SQLAlchemy + Flask-Migrate +
flask-taches) into ``tmp_path`` and drives it with ``flask db ...`` and
``flask taches ...`` subprocesses, as a user would, on an empty database: a new
SQLite file, or a new PostgreSQL or MariaDB database. The moves from 0.1.0 start
from the state 0.1.0 left: the ``taches`` table of its revision, recorded in the
application's ``alembic_version`` (or in nothing, after ``init-db``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import JSON, MetaData, create_engine, insert, inspect, text
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from flask_taches.migrations import VERSIONS_DIR
from flask_taches.migrations.history import VERSION_TABLE, head
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
        #: Folders put before the repository on PYTHONPATH (a "newer release").
        self.python_path: list[str] = []
        self.write(models="")

    def write(self, *, models: str) -> None:
        (self.root / "project.py").write_text(PROJECT.format(models=models))

    @property
    def versions(self) -> Path:
        return self.root / "migrations" / "versions"

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "flask", "--app", "project:create_app", *args)

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        path = [*self.python_path, str(REPO), os.environ.get("PYTHONPATH")]
        env = {
            **os.environ,
            "PROJECT_DATABASE_URL": self.database_url,
            "MIGRATE_FIRST": "1" if self.migrate_first else "0",
            "PYTHONPATH": os.pathsep.join(filter(None, path)),
        }
        result = subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
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
    """Every table of the extension's models (what its revisions must build)."""
    metadata = MetaData()
    for table in ALL_TABLES:
        table.to_metadata(metadata)
    return metadata


def schema_differences(engine: Engine) -> list[object]:
    """What autogenerate would write to turn the database into the model's schema."""
    with engine.connect() as conn:
        # compare_type is Flask-Migrate's default, so this is what `flask db migrate` sees.
        opts = {"compare_type": True, "include_name": _the_extensions}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, model_metadata()))


def _the_extensions(name: str | None, type_: str, parent_names: object) -> bool:
    """Only the extension's tables (not its version table, nor the project's own)."""
    return type_ != "table" or name in {table.name for table in ALL_TABLES}


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


def recorded(engine: Engine, table: str = VERSION_TABLE) -> list[str]:
    """The revisions a version table holds (none when it does not exist)."""
    if table not in table_names(engine):
        return []
    with engine.connect() as conn:
        return sorted(conn.execute(text(f"SELECT version_num FROM {table}")).scalars())


def leave_as_0_1_0(project: Project, engine: Engine, *, app_records: list[str]) -> None:
    """The database as 0.1.0 left it: the ``taches`` table of its one revision, its
    revision (or the application's head) in ``alembic_version``, or nothing (``init-db``)."""
    project.flask("taches", "downgrade", "base")
    project.flask("taches", "upgrade")  # the first revision is 0.1.0's whole schema
    assert recorded(engine) == ["taches_0001"] == [head()] or head() != "taches_0001"
    project.flask("taches", "downgrade", "taches_0001")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        if app_records:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            for revision in app_records:
                conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})


def assert_app_downgrade_keeps_the_extensions_tables(project: Project, engine: Engine) -> None:
    """The application's downgrade to its base drops its tables, never the extension's."""
    project.flask("db", "downgrade", "base")
    assert "note" not in table_names(engine)
    assert "taches" in table_names(engine)
    assert recorded(engine) == [head()]


#: A statement run in the project's app context, by ``python -c``.
IN_APP = "from project import create_app, db\nwith create_app().app_context(): {}"

#: What 0.1.0's `flask db migrate` wrote for a model added after flask-taches.
NOTES_ON_0_1_0 = '''"""notes

Revision ID: 1a2b3c4d5e6f
Revises: taches_0001
"""
from alembic import op
import sqlalchemy as sa

revision = '1a2b3c4d5e6f'
down_revision = 'taches_0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('note', sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('text', sa.String(length=80), nullable=False),
                    sa.PrimaryKeyConstraint('id'))


def downgrade():
    op.drop_table('note')
'''


@pytest.mark.parametrize("dialect", DIALECTS)
def test_flask_db_upgrade_builds_the_schema_in_a_history_of_its_own(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=False)
    project.flask("db", "init")
    assert table_names(engine) == set()

    project.flask("db", "upgrade")

    assert "taches" in table_names(engine)
    assert_model_schema(engine)
    assert_fencing_and_claim_schema(engine)
    assert recorded(engine) == [head()]
    # The application's history does not know the extension's revisions.
    assert recorded(engine, "alembic_version") == []
    assert "taches_0001" not in project.flask("db", "history").stdout

    project.flask("taches", "downgrade", "base")

    assert not table_names(engine) & {table.name for table in ALL_TABLES}
    assert recorded(engine) == []


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
def test_the_applications_revisions_leave_the_extensions_tables_out(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=True)
    project.flask("db", "init")
    project.flask("db", "upgrade")
    shipped = sorted(p.name for p in VERSIONS_DIR.glob("*.py"))

    # Nothing changed yet: autogenerate writes nothing (no taches table, no version table).
    project.flask("db", "migrate", "-m", "nothing")
    assert list(project.versions.glob("*.py")) == []

    project.write(models=NOTE_MODEL)
    project.flask("db", "migrate", "-m", "notes")
    project.flask("db", "revision", "-m", "by hand")

    own = {p.name.split("_", 1)[1] for p in project.versions.glob("*.py")}
    assert own == {"notes.py", "by_hand.py"}
    notes = next(project.versions.glob("*_notes.py")).read_text()
    assert "op.create_table('note'" in notes or 'op.create_table("note"' in notes
    assert "taches" not in notes
    assert sorted(p.name for p in VERSIONS_DIR.glob("*.py")) == shipped

    project.flask("db", "upgrade")
    assert {"note", "taches"} <= table_names(engine)
    assert_app_downgrade_keeps_the_extensions_tables(project, engine)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_release_with_a_new_revision_upgrades_without_a_second_head(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=True)
    project.write(models=NOTE_MODEL)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "notes")
    project.flask("db", "upgrade")
    (app_head,) = recorded(engine, "alembic_version")

    # `pip install -U`: the same package with one more revision in its history.
    release = tmp_path / "release"
    shutil.copytree(REPO / "flask_taches", release / "flask_taches")
    (release / "flask_taches" / "migrations" / "versions" / "taches_9999_probe.py").write_text(
        f'"""A probe table."""\n'
        f"import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = 'taches_9999'\ndown_revision = {head()!r}\n"
        f"branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n    op.create_table('taches_probe', sa.Column('id', sa.Integer()))\n\n\n"
        f"def downgrade():\n    op.drop_table('taches_probe')\n"
    )
    project.python_path = [str(release)]

    upgraded = project.flask("db", "upgrade")

    assert f"{head()} -> taches_9999" in upgraded.stderr
    assert "taches_probe" in table_names(engine)
    assert recorded(engine) == ["taches_9999"]
    assert recorded(engine, "alembic_version") == [app_head]
    assert project.flask("db", "heads").stdout.split() == [app_head, "(head)"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_moving_from_0_1_0_where_its_revision_was_a_head_of_the_applications_history(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=False)
    project.flask("db", "init")
    leave_as_0_1_0(project, engine, app_records=["taches_0001"])
    with engine.begin() as conn:
        # 0.1.0's columns only: the models have more now.
        row, model = _a_task_row(), taches_table.c
        columns = (sql_column(name, model[name].type) for name in row)
        conn.execute(insert(sql_table("taches", *columns)), row)
    # Before the upgrade, the application's history still reads: 0.1.0's revision stands in.
    assert "taches_0001" in project.flask("db", "current").stdout

    project.flask("db", "upgrade")

    assert recorded(engine) == [head()]
    assert recorded(engine, "alembic_version") == []
    assert_model_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM taches")).scalar() == 1
    assert "taches_0001" not in project.flask("db", "history").stdout


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_moving_from_0_1_0_where_the_applications_revisions_build_on_its_revision(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=True)
    project.flask("db", "init")
    (project.versions / "1a2b3c4d5e6f_notes.py").write_text(NOTES_ON_0_1_0)
    leave_as_0_1_0(project, engine, app_records=["1a2b3c4d5e6f"])
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, text VARCHAR(80))"))
    project.write(models=NOTE_MODEL)

    project.flask("db", "upgrade")

    assert recorded(engine) == [head()]
    assert recorded(engine, "alembic_version") == ["1a2b3c4d5e6f"]
    # The application's history stays whole, and its next revision builds on its own head.
    assert "taches_0001 -> 1a2b3c4d5e6f" in project.flask("db", "history").stdout
    project.flask("db", "revision", "-m", "next")
    (following,) = project.versions.glob("*_next.py")
    assert "down_revision = '1a2b3c4d5e6f'" in following.read_text()
    assert list(VERSIONS_DIR.glob("*_next.py")) == []
    project.flask("db", "upgrade")
    # Its downgrade passes over 0.1.0's revision.
    assert_app_downgrade_keeps_the_extensions_tables(project, engine)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_database_made_by_init_db_of_0_1_0_upgrades_without_a_stamp(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=False)
    leave_as_0_1_0(project, engine, app_records=[])

    adopted = project.flask("taches", "upgrade")

    assert "'taches', no revision recorded, taken to be at taches_0001" in adopted.stderr
    assert recorded(engine) == [head()]
    assert_model_schema(engine)
    # Then adding migrations to the project: `flask db upgrade` has nothing to redo.
    project.flask("db", "init")
    project.flask("db", "upgrade")
    assert recorded(engine) == [head()]


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_init_db_and_create_all_record_the_revision_they_build(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=False)
    project.flask("taches", "init-db")
    assert recorded(engine) == [head()]
    assert_model_schema(engine)

    project.flask("taches", "downgrade", "base")
    create_all = (
        "from project import create_app, db\nwith create_app().app_context(): db.create_all()"
    )
    project.python("-c", create_all)
    assert recorded(engine) == [head()]
    project.python("-c", IN_APP.format("db.drop_all()"))
    assert recorded(engine) == []

    project.flask("db", "init")
    project.flask("taches", "init-db")
    assert_model_schema(engine)
    assert recorded(engine) == [head()]


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_upgrade_in_code_and_in_sql_include_the_extensions_history(
    dialect: str, tmp_path: Path, empty_database: str, engine: Engine
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=True)
    project.flask("db", "init")

    script = project.flask("db", "upgrade", "--sql").stdout
    assert "CREATE TABLE taches (" in script
    assert f"INSERT INTO {VERSION_TABLE}" in script
    assert table_names(engine) <= {"alembic_version"}  # nothing ran

    project.python("-c", IN_APP.format("__import__('flask_migrate').upgrade()"))
    assert recorded(engine) == [head()]
    assert "CREATE TABLE taches (" not in project.flask("taches", "upgrade", "--sql").stdout


def _a_task_row() -> dict[str, object]:
    from datetime import datetime

    return {
        "method": "tests.tasks:add",
        "parametres": {},
        "status": "TO_RUN",
        "logs": [],
        "created_at": datetime(2026, 11, 27),
        "priority": 0,
        "queue": "default",
        "attempts": 0,
        "max_attempts": 1,
    }


def test_shipped_revisions_do_not_import_the_package() -> None:
    """A revision must keep creating its own schema whatever later releases change."""
    for revision in VERSIONS_DIR.glob("*.py"):
        assert "flask_taches" not in revision.read_text(), revision.name


def test_the_shipped_revisions_have_one_head_the_files_name() -> None:
    from alembic.script import ScriptDirectory

    from flask_taches.migrations.history import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [head()]


def test_migrations_dir_prints_the_shipped_folder(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["taches", "migrations-dir"])

    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()) == VERSIONS_DIR
    assert sorted(p.name for p in VERSIONS_DIR.glob("taches_*.py"))
