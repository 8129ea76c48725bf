"""The extension's own Alembic branch, wired into Flask-Migrate.

flask-taches ships its schema as Alembic revisions in :data:`VERSIONS_DIR`, on a
branch of its own (label ``taches``, base ``down_revision = None``). After the
application's ``flask db init``, ``flask db upgrade`` applies them together with
the application's own revisions, whichever of ``Migrate(app, db)`` and
``taches.init_app(app)`` ran first:

- a Flask-Migrate configure callback adds :data:`VERSIONS_DIR` to Alembic's
  ``version_locations``, after the application's own versions folder (kept
  first), with a ``path_separator`` so Alembic splits the list as we joined it;
- new revisions (``flask db migrate`` / ``flask db revision``) always go to the
  application's folder, never into the installed package, even when the newest
  revision they build on is ours.

The callback is registered on the ``Migrate`` object as soon as both extensions
are on the app: at ``init_app`` when Flask-Migrate came first, otherwise when the
first app context is pushed (every ``flask db`` command pushes one).

Without Flask-Migrate, the same effect in a plain ``alembic.ini``::

    path_separator = os
    version_locations = %(here)s/versions:<output of `flask taches migrations-dir`>
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, appcontext_pushed, current_app

from ..state import is_registered

if TYPE_CHECKING:
    # Only Flask-Migrate's commands hand us a Config; a manager that forks a
    # child per task is cheaper without Alembic's modules in its memory.
    from alembic.config import Config

#: The extension's revisions (files shipped in the package, not a Python package).
VERSIONS_DIR = Path(__file__).resolve().parent / "versions"

#: Alembic's names for the separators of ``version_locations``.
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}

#: Marks our ``process_revision_directives`` wrapper, and keeps what it wraps.
_WRAPPED = "_taches_wrapped"

# Alembic's own logger, so the message shows where Flask-Migrate's would.
logger = logging.getLogger("alembic.env")


def init_app(app: Flask) -> None:
    """Make Flask-Migrate's commands see the extension's revisions on ``app``."""
    _register_callback(app)
    # Migrate may be initialised after us: catch it when a command pushes a context.
    appcontext_pushed.connect(_on_app_context, app)


def _on_app_context(app: Flask, **_: Any) -> None:
    _register_callback(app)


def _register_callback(app: Flask) -> None:
    migrate = getattr(app.extensions.get("migrate"), "migrate", None)
    if migrate is None or not hasattr(migrate, "configure_callbacks"):
        return  # no Flask-Migrate (yet), or one too old for configure callbacks
    if configure_alembic not in migrate.configure_callbacks:
        migrate.configure(configure_alembic)


def configure_alembic(config: Config) -> Config:
    """Flask-Migrate configure callback: add our versions folder to ``config``.

    A ``Migrate`` object may serve apps that do not use flask-taches: those are
    left alone.
    """
    if not is_registered(current_app):
        return config
    own = application_locations(config)
    separator = _separator(config)
    _set_option(config, "version_locations", separator.join([*own, str(VERSIONS_DIR)]))
    if config.get_main_option("revision_environment") is None:
        # `flask db revision` runs env.py too, so the hook below decides where it goes.
        config.set_main_option("revision_environment", "true")
    _install_revision_hook(current_app.extensions["migrate"].configure_args, own[0])
    return config


def application_locations(config: Config) -> list[str]:
    """The application's own version folders: its ``version_locations``, else
    ``<script_location>/versions`` (Alembic's default), ours left out."""
    listed = config.get_version_locations_list() or []
    own = [location for location in listed if not _same_path(location, VERSIONS_DIR)]
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
    """Wrap ``process_revision_directives`` so new revisions go to ``own_versions``."""
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


def _same_path(location: str, folder: Path) -> bool:
    return Path(location).resolve() == folder
