"""``TachesExtension``: flask-taches wired into a Flask app, and the hooks it plugs in.

The extension object holds what is the same for every app (registered
services, hooks); what belongs to one app (its ``db``, its store) lives in
its :class:`~flask_taches.state.AppState`, so several apps in one process
never share a database or a setting. The service API (``add`` ... ``purge``)
is :class:`~flask_taches.service.TaskService`'s, which this class extends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import make_url

from . import config, eager, scheduling
from .decorators import decorate, options_of
from .exceptions import ConfigurationError
from .injection import Service
from .methods import method_for
from .models import ALL_TABLES
from .service import TaskService, sessions
from .state import AppState, Hooks, is_registered, register

F = TypeVar("F", bound=Callable[..., Any])


class TachesExtension(TaskService):
    """Background tasks in the application's own database.

    ``TachesExtension(app, db)`` or ``taches = TachesExtension()`` then
    ``taches.init_app(app, db)`` in the app factory.
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        #: What the application plugs in; shared by every app of this extension.
        self.hooks = Hooks(after_add=eager.run_added)
        if app is not None:
            self.init_app(app, db)

    # -- wiring ------------------------------------------------------------------

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        if is_registered(app):
            raise RuntimeError("flask-taches is already registered on this application")
        db = db or app.extensions.get("sqlalchemy")
        if db is None:
            raise ConfigurationError(
                "flask-taches needs Flask-SQLAlchemy: call db.init_app(app) first "
                "or pass db to init_app(app, db)"
            )
        config.apply_defaults(app.config)
        _refuse_memory_sqlite(app.config.get("SQLALCHEMY_DATABASE_URI"))
        if app.config["TACHES_EXECUTOR"] not in config.EXECUTORS:
            raise ConfigurationError(
                f"TACHES_EXECUTOR={app.config['TACHES_EXECUTOR']!r}: use 'fork' or 'subprocess'"
            )
        scheduling.from_config(app.config["TACHES_SCHEDULE"])  # refused here, in one line
        _attach_table(db)
        sessions.watch(app, db)
        register(app, self, AppState(app=app, db=db, hooks=self.hooks, service=self))
        self._register_web(app)
        self._register_cli(app)
        self._register_migrations(app)

    def _register_web(self, app: Flask) -> None:
        from .web import blueprint, templating

        if app.config["TACHES_REGISTER_BLUEPRINT"]:
            app.register_blueprint(blueprint, url_prefix=app.config["TACHES_URL_PREFIX"])
        templating.init_app(app)

    def _register_cli(self, app: Flask) -> None:
        from .cli import taches_cli

        app.cli.add_command(taches_cli)

    def _register_migrations(self, app: Flask) -> None:
        from .migrations import init_app as init_migrations

        init_migrations(app)

    # -- tasks declared in code ------------------------------------------------------

    def task(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        queue: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        unique: bool | None = None,
        retry_on: Any = None,
        priority: int | None = None,
        on_success: Any = None,
        on_failure: Any = None,
    ) -> Any:
        """Decorator: ``@taches.task`` or ``@taches.task(queue=..., retry_on=...)``.

        The function stays itself (calling it calls it) and gains
        ``fn.delay(**parametres)`` and ``fn.add(parametres=..., **options)``,
        which add it as a task; see :mod:`flask_taches.decorators`.
        """
        options = {
            "queue": queue,
            "max_attempts": max_attempts,
            "timeout": timeout,
            "unique": unique,
            "retry_on": retry_on,
            "priority": priority,
            "on_success": on_success,
            "on_failure": on_failure,
        }
        if func is not None:
            return decorate(self, func, **options)
        return lambda function: decorate(self, function, **options)

    # -- the web -----------------------------------------------------------------------

    @property
    def blueprint(self) -> Blueprint:
        """The ``taches`` blueprint, for ``TACHES_REGISTER_BLUEPRINT = False``.

        ``app.register_blueprint(taches.blueprint, url_prefix="/admin/tasks")``
        then mounts it where the application wants, under its own guards.
        """
        from .web import blueprint

        return blueprint

    # -- periodic tasks ---------------------------------------------------------------

    def schedule(self, name: str, method: str | Callable[..., Any], **options: Any) -> None:
        """Add ``method`` every slot of ``cron="0 3 * * *"`` (``tz=``) or ``every=SECONDS``.

        Options: ``parametres``, ``signature`` (default: the name), ``queue``,
        ``priority``, ``timeout``, ``max_attempts``, ``catch_up`` (default True:
        after downtime the latest missed slot runs once), ``unique``. A function
        of ``@taches.task`` lends its options as defaults. A bad declaration is
        refused here; a method outside the allowed packages when a manager
        starts (or ``flask taches schedules`` runs).
        """
        if isinstance(method, str):
            method_string, defaults = method, {}
        else:
            method_string = method_for(method)
            task = options_of(method)
            defaults = dict(task.defaults) if task is not None else {}
        declared = scheduling.declare(name, method_string, **{**defaults, **options})
        self.hooks.schedules.add(declared)

    def periodic(
        self, cron: str | None = None, *, name: str | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Decorator: ``@taches.periodic("0 3 * * *", tz="Europe/Paris")`` on a task function.

        Takes :meth:`schedule`'s options (``every=SECONDS`` instead of a cron);
        the schedule's name is the method string unless ``name`` is given. Above
        ``@taches.task``, the task's options are the schedule's defaults.
        """

        def register(function: F) -> F:
            self.schedule(name or method_for(function), function, cron=cron, **options)
            return function

        return register

    # -- hooks ---------------------------------------------------------------------

    def register_service(
        self, name: str, obj_or_factory: Any, *, factory: bool | None = None
    ) -> None:
        """Make ``obj_or_factory`` injectable into tasks as parameter ``name``.

        A class or function is a factory, built once per task run (by injection,
        so it may ask for ``app`` or ``db``); pass ``factory=False`` to register
        such an object as it is.
        """
        if not name.isidentifier():
            raise ValueError(f"service name {name!r} is not a valid parameter name")
        self.hooks.services[name] = Service.wrap(obj_or_factory, factory)

    @property
    def services(self) -> dict[str, Service]:
        return dict(self.hooks.services)

    def identity_loader(self, func: F) -> F:
        """Decorator: ``func()`` returns the current user's identity (owner)."""
        self.hooks.identity_loader = func
        return func

    def admin_loader(self, func: F) -> F:
        """Decorator: ``func()`` tells whether the current user is an admin."""
        self.hooks.admin_loader = func
        return func

    def authorize(self, func: F) -> F:
        """Decorator: ``func(tache, action) -> bool`` replaces the default rule."""
        self.hooks.authorize = func
        return func


def _attach_table(db: SQLAlchemy) -> None:
    """Put the extension's tables into the app's metadata (create_all, migrations)."""
    for table in ALL_TABLES:
        if table.name not in db.metadata.tables:
            table.to_metadata(db.metadata)


def _refuse_memory_sqlite(uri: Any) -> None:
    """An in-memory SQLite database lives in one connection: the store's cannot see it."""
    if not isinstance(uri, str) or not uri.startswith("sqlite"):
        return
    url = make_url(uri)
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        raise ConfigurationError(
            f"SQLALCHEMY_DATABASE_URI={uri!r} is an in-memory SQLite database, which only "
            "the connection that made it sees, while flask-taches' store, managers and "
            "'flask taches run' use connections of their own: use a file, e.g. "
            "f\"sqlite:///{tmp_path / 'test.db'}\" in a pytest fixture"
        )
