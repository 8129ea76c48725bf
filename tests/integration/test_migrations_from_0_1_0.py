"""Upgrading a project built with 0.1.0 itself: its package taken from this repository's history.

0.1.0 put its revision on a branch of the application's Alembic history, and
the application's next revision (``flask db migrate``) built on it. The test
builds such a project with 0.1.0's own code (``git archive`` of its last
commit), then runs the current release's ``flask db upgrade`` on it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.integration.test_migrations import (
    IN_APP,
    NOTE_MODEL,
    REPO,
    Project,
    assert_app_downgrade_keeps_the_extensions_tables,
    assert_model_schema,
    empty_database,  # noqa: F401  (fixtures)
    engine,  # noqa: F401
    recorded,
    table_names,
)
from tests.integration.test_migrations import head as shipped_head

#: The last commit of 0.1.0: its revision on the application's own branch.
RELEASE_0_1_0 = "63cd07b"


@pytest.fixture
def old_release(tmp_path: Path) -> Path:
    """A folder holding 0.1.0's ``flask_taches`` package, to put first on PYTHONPATH."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: 0.1.0's code is read from the repository's history")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", RELEASE_0_1_0, "flask_taches"],
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, archive.stderr.decode()
    target = tmp_path / "release-0.1.0"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    assert not (target / "flask_taches" / "migrations" / "history.py").exists()
    return target


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_project_built_on_0_1_0_upgrades_with_its_rows_and_history(
    dialect: str,
    tmp_path: Path,
    empty_database: str,  # noqa: F811  (the fixture imported above)
    engine: Engine,  # noqa: F811
    old_release: Path,
) -> None:
    project = Project(tmp_path, empty_database, migrate_first=True)
    project.python_path = [str(old_release)]
    project.write(models=NOTE_MODEL)
    project.flask("db", "init")
    project.flask("db", "upgrade")  # 0.1.0's taches_0001, in the app's history
    project.flask("db", "migrate", "-m", "notes")  # builds on taches_0001
    project.flask("db", "upgrade")
    (notes,) = project.versions.glob("*_notes.py")
    assert "down_revision = 'taches_0001'" in notes.read_text()
    project.python("-c", IN_APP.format("__import__('project').taches.add('project:create_app')"))
    (app_head,) = recorded(engine, "alembic_version")

    project.python_path = []  # `pip install -U flask-taches`
    project.flask("db", "upgrade")

    assert recorded(engine) == [shipped_head()]
    assert recorded(engine, "alembic_version") == [app_head]
    assert_model_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT method FROM taches")).scalars().all() == [
            "project:create_app"
        ]
    # The application's history stays whole, and its autogenerate finds nothing to do.
    project.flask("db", "migrate", "-m", "nothing")
    assert not list(project.versions.glob("*_nothing.py"))
    assert "note" in table_names(engine)
    assert_app_downgrade_keeps_the_extensions_tables(project, engine)
