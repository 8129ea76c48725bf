"""The extension's schema: its own Alembic history, and Flask-Migrate's commands around it.

flask-taches' revisions form a history of their own (:mod:`.history`: ``env.py``
and ``versions/`` here, applied revision in ``taches_alembic_version``) that
never joins the application's: a release that adds a revision cannot give the
application's history a second head, and neither history's downgrade touches
the other's tables. :func:`upgrade` applies it; ``flask taches upgrade`` and
``init-db`` call it, and so does ``flask db upgrade``:

- a Flask-Migrate configure callback (registered as soon as both extensions are
  on the app, whichever of ``Migrate(app, db)`` and ``taches.init_app(app)`` ran
  first) upgrades the extension's history first when the command is an upgrade
  (``flask db upgrade``, or ``flask_migrate.upgrade()`` in code), and writes its
  SQL first for ``--sql``;
- autogenerate (``flask db migrate``, ``flask db check``) leaves the extension's
  tables and its version table out of the application's revisions;
- an application that went through 0.1.0's branch keeps a whole history
  (:mod:`.old_branch`), and new revisions always go to its own folder.

Without Flask-Migrate, run ``flask taches upgrade`` beside your own Alembic.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, appcontext_pushed, current_app

from ..models import Base
from ..state import app_state, is_registered
from . import old_branch
from .history import MAIN_TABLE, SCRIPT_DIR, VERSION_TABLE, Report, record_create_all
from .history import upgrade as upgrade_history

if TYPE_CHECKING:
    # Only Flask-Migrate's commands hand us a Config; a manager that forks a
    # child per task is cheaper without Alembic's modules in its memory.
    from alembic.config import Config
    from sqlalchemy.engine import Engine

#: The extension's revisions (files shipped in the package, not a Python package).
VERSIONS_DIR = SCRIPT_DIR / "versions"

#: Alembic's names for the separators of ``version_locations``.
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}

#: Marks our wrappers of Flask-Migrate's configure arguments, and keeps what they wrap.
_WRAPPED = "_taches_wrapped"

#: How far up the stack Flask-Migrate's ``upgrade`` may be from our callback.
_UPGRADE_FRAME_DEPTH = 8

# Alembic's own logger, so the message shows where Flask-Migrate's would.
logger = logging.getLogger("alembic.env")


def init_app(app: Flask) -> None:
    """Make Flask-Migrate's commands see the extension's revisions on ``app``, and
    ``db.create_all()`` record the revision it builds."""
    for table in app_state(app).db.metadata.tables.values():
        if table.name == MAIN_TABLE:
            record_create_all(table)
    _register_callback(app)
    # Migrate may be initialised after us: catch it when a command pushes a context.
    appcontext_pushed.connect(_on_app_context, app)


def upgrade(app: Flask | None = None, *, report: Report | None = None) -> str:
    """Bring the extension's tables to this release's schema; returns the revision.

    Where the application uses Flask-Migrate, also finish the move away from
    0.1.0's branch in its history (see :mod:`.old_branch`).
    """
    app = app or current_app
    engine = app_state(app).store.engine
    revision = upgrade_history(engine, report=report)
    migrate = app.extensions.get("migrate")
    if migrate is not None:
        from alembic.config import Config

        config = Config(os.path.join(migrate.directory, "alembic.ini"))
        config.set_main_option("script_location", migrate.directory)
        _settle_old_branch(engine, config, migrate.configure_args, forget=True)
    return revision


def _on_app_context(app: Flask, **_: Any) -> None:
    _register_callback(app)


def _register_callback(app: Flask) -> None:
    migrate = getattr(app.extensions.get("migrate"), "migrate", None)
    if migrate is None or not hasattr(migrate, "configure_callbacks"):
        return  # no Flask-Migrate (yet), or one too old for configure callbacks
    if configure_alembic not in migrate.configure_callbacks:
        migrate.configure(configure_alembic)


def configure_alembic(config: Config) -> Config:
    """Flask-Migrate configure callback, run by every ``flask db`` command.

    A ``Migrate`` object may serve apps that do not use flask-taches: those are
    left alone.
    """
    if not is_registered(current_app):
        return config
    configure_args = current_app.extensions["migrate"].configure_args
    upgrading = _flask_migrate_upgrade()
    if upgrading is not None:
        _upgrade_first(sql=bool(upgrading.get("sql")))
    engine = app_state().store.engine
    forget = upgrading is not None and not upgrading.get("sql")
    if _settle_old_branch(engine, config, configure_args, forget=forget):
        locations = [*application_locations(config), str(old_branch.OLD_BRANCH_DIR)]
        _set_option(config, "version_locations", _separator(config).join(locations))
    if config.get_main_option("revision_environment") is None:
        # `flask db revision` runs env.py too, so the hook below decides where it goes.
        config.set_main_option("revision_environment", "true")
    _install_revision_hook(configure_args, application_locations(config)[0])
    _install_autogenerate_filter(configure_args)
    return config


def _upgrade_first(*, sql: bool) -> None:
    """The extension's history, before the application's ``flask db upgrade``."""
    from .history import sql_script

    engine = app_state().store.engine
    if sql:
        sql_script(engine)
    else:
        upgrade_history(engine, report=lambda line: click.echo(line, err=True))


def _settle_old_branch(
    engine: Engine, config: Config, configure_args: MutableMapping[str, Any], *, forget: bool
) -> bool:
    """Whether the application's history needs 0.1.0's revision as a no-op stand-in.

    Its revisions building on it need it; a record of it in its version table
    needs it too, until an upgrade (``forget``) deletes that record.
    """
    from sqlalchemy.exc import SQLAlchemyError

    if old_branch.built_on(application_locations(config)):
        return True
    version_table = configure_args.get("version_table", "alembic_version")
    schema = configure_args.get("version_table_schema")
    try:
        with engine.begin() as connection:
            if not old_branch.recorded(connection, version_table, schema):
                return False
            if forget:
                old_branch.forget(connection, version_table, schema)
                return False
            return True
    except SQLAlchemyError:
        return False  # no database yet (`flask db init`): nothing recorded in it


def _flask_migrate_upgrade() -> dict[str, Any] | None:
    """The arguments of Flask-Migrate's ``upgrade`` when it is what asked for the
    config (the configure callback is not told which command runs), else ``None``."""
    import flask_migrate

    code = getattr(getattr(flask_migrate.upgrade, "__wrapped__", None), "__code__", None)
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_UPGRADE_FRAME_DEPTH):
        if frame is None or code is None:
            return None
        if frame.f_code is code:
            return dict(frame.f_locals)
        frame = frame.f_back
    return None


def application_locations(config: Config) -> list[str]:
    """The application's own version folders: its ``version_locations``, else
    ``<script_location>/versions`` (Alembic's default), ours left out."""
    listed = config.get_version_locations_list() or []
    theirs = (VERSIONS_DIR, old_branch.OLD_BRANCH_DIR)
    own = [location for location in listed if not any(_same_path(location, t) for t in theirs)]
    if own:
        return own
    script_location = config.get_main_option("script_location") or "migrations"
    return [os.path.join(script_location, "versions")]


def _separator(config: Config) -> str:
    """The separator Alembic will split ``version_locations`` on; set one if none is."""
    for option in ("path_separator", "version_path_separator"):
        name = config.get_main_option(option)
        if name is not None:
            if name not in _SEPARATORS:
                raise ValueError(f"{option} = {name!r} is not one of {', '.join(_SEPARATORS)}")
            return _SEPARATORS[name]
    # Without one Alembic falls back to splitting on spaces and commas (deprecated),
    # which would cut a folder whose path holds a space.
    config.set_main_option("path_separator", "os")
    return os.pathsep


def _set_option(config: Config, name: str, value: str) -> None:
    # Config values go through ConfigParser interpolation: a literal % is %%.
    config.set_main_option(name, value.replace("%", "%%"))


def _install_revision_hook(configure_args: MutableMapping[str, Any], own_versions: str) -> None:
    """Wrap ``process_revision_directives`` so new revisions go to ``own_versions``
    (0.1.0's stand-in may be the revision they build on)."""
    previous = configure_args.get("process_revision_directives")
    previous = getattr(previous, _WRAPPED, previous)  # ours from an earlier command

    def process_revision_directives(context: Any, revision: Any, directives: list[Any]) -> None:
        for script in directives:
            if getattr(script, "version_path", None) is None:
                script.version_path = own_versions
        if previous is not None:
            previous(context, revision, directives)
        else:
            _skip_empty_autogenerate(context, directives)

    setattr(process_revision_directives, _WRAPPED, previous)
    configure_args["process_revision_directives"] = process_revision_directives


def _skip_empty_autogenerate(context: Any, directives: list[Any]) -> None:
    """Flask-Migrate's env.py default, which ours displaces: ``flask db migrate``
    writes no revision when it found no change."""
    config = context.config
    autogenerate = config is not None and getattr(config.cmd_opts, "autogenerate", False)
    if autogenerate and directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def _install_autogenerate_filter(configure_args: MutableMapping[str, Any]) -> None:
    """Wrap ``include_object`` so autogenerate never writes the extension's tables into
    the application's revisions (their schema is the extension's history's), from the
    models' side (``include_name`` sees only the database's) nor the database's."""
    previous = configure_args.get("include_object")
    previous = getattr(previous, _WRAPPED, previous)
    own_tables = {*Base.metadata.tables, VERSION_TABLE}

    def include_object(obj: Any, name: str | None, type_: str, *args: Any) -> bool:
        if type_ == "table" and name in own_tables:
            return False
        return previous is None or bool(previous(obj, name, type_, *args))

    setattr(include_object, _WRAPPED, previous)
    configure_args["include_object"] = include_object


def _same_path(location: str, folder: Path) -> bool:
    return Path(location).resolve() == folder
