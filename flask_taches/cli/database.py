"""Commands about the schema: ``init-db``, and where the extension's Alembic revisions live.

``flask db upgrade`` finds the revisions by itself when the app uses
Flask-Migrate; a project that drives Alembic directly lists this folder in its
``alembic.ini``; a quick start without migrations runs ``init-db``.
"""

from __future__ import annotations

import click

from ..migrations import VERSIONS_DIR
from ..models import ALL_TABLES
from ..state import app_state
from . import taches_cli
from .errors import TaskCommand


@taches_cli.command("migrations-dir")
def migrations_dir_command() -> None:
    """Print the folder of flask-taches' Alembic revisions (branch ``taches``).

    For a plain Alembic set-up, add it to ``version_locations`` in alembic.ini,
    with ``path_separator = os``.
    """
    click.echo(str(VERSIONS_DIR))


@taches_cli.command("init-db", cls=TaskCommand)
def init_db_command() -> None:
    """Create the extension's tables and indexes if missing (a quick start without migrations)."""
    state = app_state()
    # Through the store's engine: on SQLite its connections turn WAL on, so a new
    # file is in WAL mode from the start (add() is about 3x slower in rollback mode).
    for table in ALL_TABLES:
        state.db.metadata.tables[table.name].create(state.store.engine, checkfirst=True)
        click.echo(f"table {table.name!r} is ready")
