"""Commands about the schema: where the extension's Alembic revisions live.

``flask db upgrade`` finds them by itself when the app uses Flask-Migrate; a
project that drives Alembic directly lists this folder in its ``alembic.ini``.
"""

from __future__ import annotations

import click

from ..migrations import VERSIONS_DIR
from . import taches_cli


@taches_cli.command("migrations-dir")
def migrations_dir_command() -> None:
    """Print the folder of flask-taches' Alembic revisions (branch ``taches``).

    For a plain Alembic set-up, add it to ``version_locations`` in alembic.ini,
    with ``path_separator = os``.
    """
    click.echo(str(VERSIONS_DIR))
