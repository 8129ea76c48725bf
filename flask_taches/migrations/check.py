"""Whether the extension's tables are there, said in one line when they are not.

A command or a page that meets a database error asks :func:`missing_schema`:
if the reason is a missing table, it says which and how to create it (a
:class:`~flask_taches.exceptions.SchemaMissing`) instead of a traceback. The
manager asks before it starts, since it would otherwise log the same error
every second.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..exceptions import SchemaMissing
from ..models import ALL_TABLES

#: How the tables are made, for the message.
HOW = (
    "create {them} with `flask db upgrade` (Flask-Migrate), `flask taches upgrade`, "
    "or `flask taches init-db`"
)


def missing_tables(engine: Engine) -> list[str]:
    """The extension's tables the database does not have, in creation order."""
    present = set(inspect(engine).get_table_names())
    return [table.name for table in ALL_TABLES if table.name not in present]


def problem(engine: Engine) -> SchemaMissing | None:
    """The missing tables as an error to raise, None when they are all there."""
    missing = missing_tables(engine)
    if not missing:
        return None
    names = ", ".join(repr(name) for name in missing)
    if len(missing) == 1:
        return SchemaMissing(f"table {names} is missing: " + HOW.format(them="it"))
    return SchemaMissing(f"tables {names} are missing: " + HOW.format(them="them"))


def missing_schema(engine: Engine) -> SchemaMissing | None:
    """A :class:`SchemaMissing` if a table is missing; None when they are all there,
    or when the database cannot even be asked (that error speaks for itself)."""
    try:
        return problem(engine)
    except SQLAlchemyError:
        return None
