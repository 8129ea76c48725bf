"""The extension's own Alembic history: its revisions and a version table of its own.

flask-taches' revisions never join the application's Alembic history. They are
an Alembic environment of their own (``env.py`` and ``versions/`` beside this
module) whose applied revision is kept in :data:`VERSION_TABLE`, not in the
application's ``alembic_version``. So a release that adds a revision never gives
the application's history a second head, and moving the extension's schema up or
down never touches the application's tables.

:func:`upgrade` is what ``flask taches upgrade``, ``flask taches init-db`` and
(through the Flask-Migrate hook) ``flask db upgrade`` run. Before upgrading it
*adopts* a schema built before this table existed: a ``taches`` table with no
recorded revision was made by 0.1.0 (its branch in the app's history, ``init-db``
or ``db.create_all()``), whose schema is that of :data:`FIRST_REVISION`, unless
it already has every table and column of the models (``create_all`` of a later
release): that one is at :func:`head`.

``db.create_all()`` builds the tables at the newest revision, so the table's
``after_create`` event records :func:`head` (and ``after_drop`` forgets it):
later upgrades then start from the right revision.

Alembic is imported only inside the commands' functions: a manager forking a child
per task (from an app that may call ``create_all``) is cheaper without it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, event, inspect
from sqlalchemy.engine import Connection, Engine

from ..models import Base

if TYPE_CHECKING:
    from alembic.config import Config

#: The Alembic environment: ``env.py`` and ``versions/``.
SCRIPT_DIR = Path(__file__).resolve().parent
#: Where the extension records its applied revision (one row, Alembic's format).
VERSION_TABLE = "taches_alembic_version"
#: The revision whose schema 0.1.0 built (the only one 0.1.0 shipped).
FIRST_REVISION = "taches_0001"
#: The table whose presence, with no revision recorded, means a 0.1.0 schema.
MAIN_TABLE = "taches"

#: The version table as Alembic creates it, for ``create_all``'s record.
_VERSIONS = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)

#: ``(message)``: what a step reports, one line each (e.g. ``click.echo``).
Report = Callable[[str], None]


def alembic_config(*, output: TextIO | None = None) -> Config:
    """An Alembic config for the extension's own environment (no ``alembic.ini``)."""
    from alembic.config import Config

    config = Config(stdout=output or sys.stdout)
    config.set_main_option("script_location", str(SCRIPT_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["version_table"] = VERSION_TABLE
    return config


def head() -> str:
    """The newest revision this release ships, read from the revision files."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (SCRIPT_DIR / "versions").glob("*.py"):
        values = module_literals(path.read_text(encoding="utf-8"))
        revisions.add(values["revision"])
        parents.update(revision_ids(values.get("down_revision")))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"flask-taches' revisions must have one head, not {sorted(heads)}")
    return heads.pop()


def module_literals(source: str) -> dict[str, Any]:
    """The literal values a revision file assigns at module level (``revision``...)."""
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            continue
        values.update((t.id, literal) for t in targets if isinstance(t, ast.Name))
    return values


def revision_ids(value: Any) -> tuple[str, ...]:
    """``down_revision``/``depends_on`` as a tuple: ``None``, one id, or several."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list)):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def record_create_all(table: Table) -> None:
    """Make ``create_all`` (and ``drop_all``) of ``table`` keep the version table true."""
    if not event.contains(table, "after_create", _record_head):
        event.listen(table, "after_create", _record_head)
        event.listen(table, "after_drop", _forget_schema)


def _record_head(_table: Table, connection: Connection, **_: Any) -> None:
    _VERSIONS.create(connection, checkfirst=True)
    connection.execute(_VERSIONS.delete())
    connection.execute(_VERSIONS.insert().values(version_num=head()))


def _forget_schema(_table: Table, connection: Connection, **_: Any) -> None:
    _VERSIONS.drop(connection, checkfirst=True)


def current(connection: Connection) -> str | None:
    """The revision recorded in the database, or ``None`` when there is none."""
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    heads = context.get_current_heads()
    return heads[0] if heads else None


def upgrade(engine: Engine, revision: str = "head", *, report: Report | None = None) -> str:
    """Adopt a 0.1.0 schema if need be, then upgrade to ``revision``; returns the
    revision the database is at."""
    from alembic import command

    with engine.begin() as connection:
        adopt(connection, report=report)
        config = _online_config(connection, report)
        command.upgrade(config, revision)
        return current(connection) or "base"


def downgrade(engine: Engine, revision: str, *, report: Report | None = None) -> str | None:
    """Downgrade the extension's schema to ``revision`` (``base`` removes it all)."""
    from alembic import command

    with engine.begin() as connection:
        adopt(connection, report=report)
        command.downgrade(_online_config(connection, report), revision)
        return current(connection)


def stamp(engine: Engine, revision: str) -> None:
    """Record ``revision`` as applied without running anything (a schema built by
    hand or by ``db.create_all()`` of this release: ``stamp head``)."""
    from alembic import command

    with engine.begin() as connection:
        command.stamp(_online_config(connection, None), revision)


def sql_script(engine: Engine, revision: str = "head", *, output: TextIO | None = None) -> None:
    """Write to ``output`` the SQL that :func:`upgrade` would run (Alembic's offline
    mode), from the revision recorded in the database when it can be read."""
    from alembic import command
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            start = current(connection)
    except SQLAlchemyError:
        start = None  # no database to ask: the whole history
    config = alembic_config(output=output)
    config.attributes["url"] = engine.url
    command.upgrade(config, f"{start}:{revision}" if start else revision, sql=True)


def adopt(connection: Connection, *, report: Report | None = None) -> bool:
    """Record the revision of a ``taches`` table that has none recorded: :func:`head`
    when it has all the models' tables and columns, else :data:`FIRST_REVISION`;
    returns whether it recorded one."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if current(connection) is not None:
        return False
    inspector = inspect(connection)
    if not inspector.has_table(MAIN_TABLE):
        return False
    # Every table and column of this release's models: db.create_all() of a release
    # that did not record it yet. Otherwise the one schema 0.1.0 had.
    built_by_models = all(
        inspector.has_table(table.name)
        and set(table.columns.keys()) <= {c["name"] for c in inspector.get_columns(table.name)}
        for table in Base.metadata.tables.values()
    )
    revision = head() if built_by_models else FIRST_REVISION
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    context.stamp(ScriptDirectory.from_config(alembic_config()), revision)
    if report is not None:
        report(f"flask-taches: {MAIN_TABLE!r}, no revision recorded, taken to be at {revision}")
    return True


def _online_config(connection: Connection, report: Report | None) -> Config:
    config = alembic_config()
    config.attributes["connection"] = connection
    if report is not None:
        config.attributes["on_version_apply"] = _reporter(report)
    return config


def _reporter(report: Report) -> Callable[..., None]:
    def on_version_apply(*, step: Any, **_: Any) -> None:
        verb = "upgrade" if step.is_upgrade else "downgrade"
        doc = f" ({step.up_revision.doc})" if step.up_revision is not None else ""
        source = ", ".join(step.source_revision_ids) or "base"
        target = ", ".join(step.destination_revision_ids) or "base"
        report(f"flask-taches: {verb} {source} -> {target}{doc}")

    return on_version_apply
