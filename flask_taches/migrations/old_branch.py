"""0.1.0's branch in an application's Alembic history, and the move away from it.

0.1.0 put its revision ``taches_0001`` (label ``taches``) into the application's
own history. An application upgraded to it has one of two traces of it:

- its ``alembic_version`` holds ``taches_0001`` as a head of its own (nothing of
  the application's came after it): once the extension's own history has
  recorded the schema, that row is deleted, and the application's history no
  longer knows the extension;
- its own revisions name ``taches_0001`` as a ``down_revision`` (written by
  ``flask db migrate`` or ``flask db merge heads`` on 0.1.0): a no-op
  ``taches_0001`` (:data:`OLD_BRANCH_DIR`) keeps that history whole, and the
  application's ``upgrade`` and ``downgrade`` pass through it without touching the
  extension's tables. Deleting the name from those revisions ends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, inspect
from sqlalchemy.engine import Connection

from .history import FIRST_REVISION, module_literals, revision_ids

#: The no-op stand-in of 0.1.0's revision, for the application's history.
OLD_BRANCH_DIR = Path(__file__).resolve().parent / "old_branch_versions"

#: Where a revision names the revisions it builds on.
_PARENT_NAMES = ("down_revision", "depends_on")


def built_on(locations: Iterable[str]) -> bool:
    """Whether a revision in the application's ``locations`` builds on 0.1.0's."""
    for folder in locations:
        for path in Path(folder).glob("*.py"):
            text = path.read_text(encoding="utf-8", errors="replace")
            if FIRST_REVISION in text and FIRST_REVISION in _parents(text):
                return True
    return False


def recorded(connection: Connection, version_table: str, schema: str | None = None) -> bool:
    """Whether the application's version table holds 0.1.0's revision."""
    if not inspect(connection).has_table(version_table, schema=schema):
        return False
    table = _version_table(version_table, schema)
    query = table.select().where(table.c.version_num == FIRST_REVISION)
    return connection.execute(query).first() is not None


def forget(connection: Connection, version_table: str, schema: str | None = None) -> None:
    """Delete 0.1.0's revision from the application's version table."""
    table = _version_table(version_table, schema)
    connection.execute(table.delete().where(table.c.version_num == FIRST_REVISION))


def _version_table(name: str, schema: str | None) -> Table:
    return Table(name, MetaData(), Column("version_num", String(32)), schema=schema)


def _parents(source: str) -> tuple[str, ...]:
    """The revision ids a revision file names as ``down_revision``/``depends_on``."""
    try:
        values = module_literals(source)
    except SyntaxError:
        return ()
    return tuple(name for key in _PARENT_NAMES for name in revision_ids(values.get(key)))
