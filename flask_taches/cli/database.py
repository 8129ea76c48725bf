"""Commands about the schema: the extension's own Alembic history, and ``init-db``.

The extension's revisions are a history of their own (version table
``taches_alembic_version``), apart from the application's: ``flask db upgrade``
applies them first when the app uses Flask-Migrate; otherwise ``flask taches
upgrade`` does, beside your own Alembic. ``init-db`` is the same upgrade, for a
quick start without migrations.
"""

from __future__ import annotations

import click

from ..migrations import VERSIONS_DIR, upgrade
from ..migrations import history as schema_history
from ..migrations.old_branch import OLD_BRANCH_DIR
from ..models import ALL_TABLES
from ..state import app_state
from . import taches_cli
from .errors import TaskCommand


def _report(line: str) -> None:
    click.echo(line, err=True)


@taches_cli.command("upgrade", cls=TaskCommand)
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
def upgrade_command(sql: bool) -> None:
    """Bring the extension's tables to this release's schema (its own Alembic history).

    A ``taches`` table with no revision recorded (made by 0.1.0, ``init-db`` or
    ``db.create_all()``) is taken to be at the first revision, then upgraded.
    """
    if sql:
        schema_history.sql_script(app_state().store.engine)
        return
    revision = upgrade(report=_report)
    click.echo(f"flask-taches schema at {revision} (head)")


@taches_cli.command("downgrade", cls=TaskCommand)
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Downgrade the extension's tables to REVISION (``base`` drops them all)."""
    reached = schema_history.downgrade(app_state().store.engine, revision, report=_report)
    click.echo(f"flask-taches schema at {reached or 'base'}")


@taches_cli.command("stamp", cls=TaskCommand)
@click.argument("revision")
def stamp_command(revision: str) -> None:
    """Record REVISION as applied without running it (``head`` for tables that
    ``db.create_all()`` of this release made)."""
    schema_history.stamp(app_state().store.engine, revision)
    click.echo(f"flask-taches schema recorded at {revision}")


@taches_cli.command("migrations-dir")
@click.option(
    "--old-branch",
    is_flag=True,
    help="The folder of 0.1.0's revision as a no-op, for a plain alembic.ini that listed ours.",
)
def migrations_dir_command(old_branch: bool) -> None:
    """Print the folder of flask-taches' Alembic revisions (applied by ``upgrade``)."""
    click.echo(str(OLD_BRANCH_DIR if old_branch else VERSIONS_DIR))


@taches_cli.command("init-db", cls=TaskCommand)
def init_db_command() -> None:
    """Create the extension's tables, or bring them up to date (a quick start without
    migrations); the same as ``upgrade``."""
    # Through the store's engine (upgrade() uses it): on SQLite its connections turn
    # WAL on, so a new file is in WAL mode from the start (add() is 3x slower without).
    upgrade(report=_report)
    for table in ALL_TABLES:
        click.echo(f"table {table.name!r} is ready")
