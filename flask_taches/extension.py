"""``TachesExtension``: wiring into a Flask app, and the service API.

The extension object holds what is the same for every app (registered
services, hooks); what belongs to one app (its ``db``, its :class:`Store`)
lives in ``app.extensions["taches.state"]``, so several apps in one process
never share a database or a setting.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select

from . import auth, config
from .exceptions import (
    ConfigurationError,
    InvalidTache,
    ParametresNotJSON,
    TacheNotFound,
)
from .files import remove_folder, store_fichier
from .loading import Service, check_allowed, locate
from .models import Tache, taches_table, utcnow
from .status import FINISHED, Status
from .store import Store

F = TypeVar("F", bound=Callable[..., Any])
PURGE_BATCH = 500  # tasks deleted per transaction by purge()
_UNSET: Any = object()

#: Keyword arguments ``add()`` copies onto the task when given.
TACHE_OPTIONS = (
    "parametres",
    "parametres_caches",
    "signature",
    "run_at",
    "priority",
    "queue",
    "max_attempts",
    "timeout",
)


@dataclass
class AppState:
    """What flask-taches keeps for one application."""

    db: SQLAlchemy
    store: Store | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class TachesExtension:
    """Background tasks in the application's own database.

    ``TachesExtension(app, db)`` or ``taches = TachesExtension()`` then
    ``taches.init_app(app, db)`` in the app factory.
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        self._services: dict[str, Service] = {}
        self._identity_loader: Callable[[], Any] | None = None
        self._admin_predicate: Callable[[], bool] | None = None
        self._authorize: Callable[[Tache, str], bool] | None = None
        if app is not None:
            self.init_app(app, db)

    # -- wiring ------------------------------------------------------------------

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        if "taches" in app.extensions:
            raise RuntimeError("flask-taches is already registered on this application")
        db = db or app.extensions.get("sqlalchemy")
        if db is None:
            raise ConfigurationError(
                "flask-taches needs Flask-SQLAlchemy: call db.init_app(app) first "
                "or pass db to init_app(app, db)"
            )
        config.apply_defaults(app.config)
        if app.config["TACHES_EXECUTOR"] not in ("fork", "subprocess"):
            raise ConfigurationError(
                f"TACHES_EXECUTOR={app.config['TACHES_EXECUTOR']!r}: use 'fork' or 'subprocess'"
            )
        _attach_table(db)
        app.extensions["taches"] = self
        app.extensions["taches.state"] = AppState(db=db)
        self._register_web(app)
        self._register_cli(app)
        self._register_migrations(app)

    def _register_web(self, app: Flask) -> None:
        from . import templating, views

        app.register_blueprint(views.blueprint, url_prefix=app.config["TACHES_URL_PREFIX"])
        templating.init_app(app)

    def _register_cli(self, app: Flask) -> None:
        from .cli import taches_cli

        app.cli.add_command(taches_cli)

    def _register_migrations(self, app: Flask) -> None:
        from .migrations import init_app as init_migrations

        init_migrations(app)

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
        self._services[name] = Service.wrap(obj_or_factory, factory)

    @property
    def services(self) -> dict[str, Service]:
        return dict(self._services)

    def identity_loader(self, func: F) -> F:
        """Decorator: ``func()`` returns the current user's identity (owner)."""
        self._identity_loader = func
        return func

    def admin_loader(self, func: F) -> F:
        """Decorator: ``func()`` tells whether the current user is an admin."""
        self._admin_predicate = func
        return func

    def authorize(self, func: F) -> F:
        """Decorator: ``func(tache, action) -> bool`` replaces the default rule."""
        self._authorize = func
        return func

    # -- per-app state ---------------------------------------------------------------

    @staticmethod
    def state(app: Flask | None = None) -> AppState:
        app = app or current_app
        try:
            return app.extensions["taches.state"]
        except KeyError:
            raise ConfigurationError("flask-taches is not initialised on this app") from None

    def db(self) -> SQLAlchemy:
        return self.state().db

    def store(self) -> Store:
        """The current app's :class:`Store` (built on first use, inside an app context)."""
        state = self.state()
        if state.store is None:
            state.store = Store.for_engine(
                state.db.engine, retry_base=current_app.config["TACHES_RETRY_DELAY"]
            )
        return state.store

    def allowed_modules(self) -> list[str]:
        allowed = current_app.config.get("TACHES_ALLOWED_MODULES")
        if allowed:
            return [allowed] if isinstance(allowed, str) else list(allowed)
        return [current_app.import_name.split(".")[0]]

    def folder(self) -> Path:
        """Where attached files live: ``TACHES_FOLDER`` or ``instance/taches``."""
        folder = current_app.config.get("TACHES_FOLDER")
        return Path(folder) if folder else Path(current_app.instance_path) / "taches"

    # -- service API -----------------------------------------------------------------

    def add(
        self,
        tache: Tache | str,
        *,
        owner: str | None = _UNSET,
        fichier: Any = None,
        commit: bool = True,
        **options: Any,
    ) -> int:
        """Save a new task as TO_RUN and return its id.

        ``tache`` is a :class:`Tache` or a method string; ``options`` are the
        columns of :data:`TACHE_OPTIONS`. ``commit=False`` only flushes, so the
        task is enqueued with the caller's own transaction.
        """
        tache = self._prepare(tache, owner=owner, options=options)
        return self._save([tache], fichiers=[fichier], commit=commit)[0]

    def add_many(self, taches: Iterable[Tache | str], *, commit: bool = True) -> list[int]:
        """Save many tasks in one transaction (the bulk form of :meth:`add`)."""
        prepared = [self._prepare(t, owner=_UNSET, options={}) for t in taches]
        return self._save(prepared, fichiers=[None] * len(prepared), commit=commit)

    def chain(self, *taches: Tache | str, commit: bool = True) -> list[int]:
        """Save tasks that run one after the other; the first is TO_RUN, the rest WAITING.

        Each one starts when the one before COMPLETES; if one ends otherwise,
        the rest of the chain is CANCELLED with a log saying why.
        """
        if len(taches) < 2:
            raise InvalidTache("a chain needs at least two tasks")
        prepared = [self._prepare(t, owner=_UNSET, options={}) for t in taches]
        for waiting in prepared[1:]:
            waiting.status = Status.WAITING.value
        ids = self._save(prepared, fichiers=[None] * len(prepared), commit=False)
        session = self.db().session
        for before, after in itertools.pairwise(prepared):
            before.next_id = after.id
        session.flush()
        if commit:
            session.commit()
        return ids

    def _prepare(self, tache: Tache | str, *, owner: Any, options: dict[str, Any]) -> Tache:
        if isinstance(tache, str):
            tache = Tache(method=tache)
        elif not isinstance(tache, Tache):
            raise InvalidTache(
                f"add() takes a Tache or a method string, not {type(tache).__name__}"
            )
        elif tache.id is not None:
            raise InvalidTache(f"task {tache.id} is already saved")
        unknown = set(options) - set(TACHE_OPTIONS)
        if unknown:
            raise InvalidTache(f"unknown option(s) for add(): {', '.join(sorted(unknown))}")
        for key, value in options.items():
            setattr(tache, key, value)
        self.check_method(tache.method)
        tache.parametres = _json_object("parametres", tache.parametres)
        tache.parametres_caches = _json_object("parametres_caches", tache.parametres_caches) or None
        if owner is not _UNSET:
            tache.owner = owner
        elif tache.owner is None:
            tache.owner = auth.current_owner()
        self._apply_defaults(tache)
        return tache

    def _apply_defaults(self, tache: Tache) -> None:
        cfg = current_app.config
        now = utcnow()
        tache.status = tache.status or Status.TO_RUN.value
        if tache.status not in (Status.TO_RUN.value, Status.WAITING.value):
            raise InvalidTache(f"a new task is TO_RUN or WAITING, not {tache.status}")
        tache.created_at = now
        tache.run_at = _utc(tache.run_at) if tache.run_at is not None else now
        tache.queue = tache.queue or cfg["TACHES_DEFAULT_QUEUE"]
        tache.priority = int(tache.priority or 0)
        tache.attempts = 0
        if tache.max_attempts is None:
            tache.max_attempts = cfg["TACHES_MAX_ATTEMPTS"]
        tache.max_attempts = int(tache.max_attempts)
        if tache.max_attempts < 1:
            raise InvalidTache("max_attempts must be at least 1")
        if tache.timeout is None:
            tache.timeout = cfg["TACHES_TIMEOUT"]
        if tache.timeout is not None and not tache.timeout > 0:
            raise InvalidTache("timeout must be a positive number of seconds")
        tache.logs = list(tache.logs or [])

    def check_method(self, method: str) -> None:
        """Refuse a method outside ``TACHES_ALLOWED_MODULES`` or that does not resolve."""
        check_allowed(method, self.allowed_modules())
        locate(method)

    def _save(self, taches: Sequence[Tache], *, fichiers: Sequence[Any], commit: bool) -> list[int]:
        session = self.db().session
        session.add_all(taches)
        session.flush()
        # Read now: after commit each id would cost a SELECT (expire_on_commit).
        ids = [t.id for t in taches]
        saved: list[Path] = []
        try:
            for tache, fichier in zip(taches, fichiers, strict=True):
                if fichier is not None:
                    tache.fichier = store_fichier(self._fichier_folder(tache.id), fichier)
                    saved.append(self._fichier_folder(tache.id))
            if any(t.status == Status.TO_RUN.value for t in taches):
                for queue in {t.queue for t in taches}:
                    self.store().notify_added(session.connection(), queue)
            if commit:
                session.commit()
            else:
                session.flush()
        except BaseException:
            session.rollback()
            for folder in saved:
                remove_folder(folder)
            raise
        return ids

    def _fichier_folder(self, tache_id: int) -> Path:
        return self.folder() / str(int(tache_id))

    def fichier_path(self, tache: Tache) -> Path | None:
        """Absolute path of a task's attached file, or None."""
        if not tache.fichier:
            return None
        return self._fichier_folder(tache.id) / tache.fichier

    def get(self, tache_id: int) -> Tache | None:
        """The task with this id, fresh from the database, or None."""
        return self.db().session.get(Tache, int(tache_id), populate_existing=True)

    def get_or_raise(self, tache_id: int) -> Tache:
        tache = self.get(tache_id)
        if tache is None:
            raise TacheNotFound(f"no task with id {tache_id}")
        return tache

    def latest(self, signature: str) -> Tache | None:
        """The newest task with this signature (the bundle's "latest task" view)."""
        return (
            self.db()
            .session.scalars(
                select(Tache).where(Tache.signature == signature).order_by(Tache.id.desc()).limit(1)
            )
            .first()
        )

    def cancel(self, tache: Tache | int, *, who: str | None = None) -> Status | None:
        """Cancel a task; a RUNNING one is stopped by its own process, on any host.

        Returns the status now stored (RUNNING while the stop is under way), or
        None when the task had already finished.
        """
        tache_id = _id_of(tache)
        self._release_session()
        status = self.store().cancel_now(tache_id, who or auth.current_owner() or "cli")
        self._refresh(tache)
        return status

    def restart(self, tache: Tache | int) -> None:
        """Put a FAILED, INTERRUPTED, CANCELLED or COMPLETED task back to TO_RUN."""
        tache_id = _id_of(tache)
        self._release_session()
        self.store().restart(tache_id)
        self._refresh(tache)

    def delete(self, tache: Tache | int) -> None:
        """Delete a task that is not RUNNING, with its attached file."""
        tache_id = _id_of(tache)
        self._release_session()
        self.store().delete(tache_id)
        remove_folder(self._fichier_folder(tache_id))
        if isinstance(tache, Tache):
            session = self.db().session
            if tache in session:
                session.expunge(tache)

    def purge(self, older_than: timedelta, statuses: Iterable[str] | None = None) -> int:
        """Delete finished tasks that ended more than ``older_than`` ago; how many.

        Only COMPLETED, FAILED, INTERRUPTED and CANCELLED tasks (or those of
        ``statuses``, which must be finished ones) go, with their files, in
        batches of :data:`PURGE_BATCH` so no transaction holds the table long.
        """
        finished = sorted(s.value for s in FINISHED)
        requested = [str(s).upper() for s in statuses] if statuses else finished
        try:
            wanted = sorted({Status(s).value for s in requested})
        except ValueError as exc:
            raise InvalidTache(f"unknown status in {', '.join(requested)}") from exc
        if not set(wanted) <= set(finished):
            raise InvalidTache(f"purge only deletes finished tasks ({', '.join(finished)})")
        cutoff = utcnow() - older_than
        self._release_session()
        deleted = 0
        while ids := self.store().purge_batch(wanted, cutoff, PURGE_BATCH):
            for tache_id in ids:
                remove_folder(self._fichier_folder(tache_id))
            deleted += len(ids)
        return deleted

    def _release_session(self) -> None:
        """End the request's read transaction so a SQLite writer does not wait on it."""
        session = self.db().session
        if not session.new and not session.dirty and not session.deleted:
            session.rollback()

    def _refresh(self, tache: Tache | int) -> None:
        if isinstance(tache, Tache):
            session = self.db().session
            if tache in session:
                session.refresh(tache)


def _attach_table(db: SQLAlchemy) -> None:
    """Put the ``taches`` table into the app's metadata (create_all, migrations)."""
    if "taches" not in db.metadata.tables:
        taches_table.to_metadata(db.metadata)


def _id_of(tache: Tache | int) -> int:
    if isinstance(tache, Tache):
        return int(tache.id)
    try:
        return int(tache)
    except (TypeError, ValueError):
        raise TacheNotFound(f"{tache!r} is not a task id") from None


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidTache(f"run_at must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _json_object(name: str, value: Any) -> dict[str, Any]:
    """Check that ``value`` is a JSON object (a dict of JSON values), strictly."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParametresNotJSON(f"{name} must be a dict, not {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParametresNotJSON(f"{name} is not JSON: {exc}") from exc
    if json.loads(text) != value:
        # e.g. int keys become strings, tuples become lists: the task would see other data
        raise ParametresNotJSON(f"{name} does not survive a JSON round trip (keys must be str)")
    return value
