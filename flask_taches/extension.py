"""``TachesExtension``: wiring into a Flask app, and the service API.

The extension object holds what is the same for every app (registered
services, hooks); what belongs to one app (its ``db``, its :class:`Store`)
lives in ``app.extensions["taches.state"]``, so several apps in one process
never share a database or a setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select
from sqlalchemy.orm.attributes import instance_dict

from . import auth, config, sessions, validation
from .clock import as_utc, utcnow
from .exceptions import (
    ConfigurationError,
    InvalidTache,
    TacheNotFound,
    UncommittedSession,
    no_such_task,
)
from .files import remove_folder, store_fichier
from .injection import Service
from .inserting import NewRow, adopt, disown, json_object
from .models import MAX_ID, Tache, taches_table
from .state import AppState, Hooks, app_state, is_registered, register
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


class TachesExtension:
    """Background tasks in the application's own database.

    ``TachesExtension(app, db)`` or ``taches = TachesExtension()`` then
    ``taches.init_app(app, db)`` in the app factory.
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        #: What the application plugs in; shared by every app of this extension.
        self.hooks = Hooks()
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
        if app.config["TACHES_EXECUTOR"] not in ("fork", "subprocess"):
            raise ConfigurationError(
                f"TACHES_EXECUTOR={app.config['TACHES_EXECUTOR']!r}: use 'fork' or 'subprocess'"
            )
        _attach_table(db)
        sessions.watch(app, db)
        register(app, self, AppState(app=app, db=db, hooks=self.hooks, service=self))
        self._register_web(app)
        self._register_cli(app)
        self._register_migrations(app)

    def _register_web(self, app: Flask) -> None:
        from .web import blueprint, templating

        app.register_blueprint(blueprint, url_prefix=app.config["TACHES_URL_PREFIX"])
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

    # -- per-app state ---------------------------------------------------------------

    @staticmethod
    def state(app: Flask | None = None) -> AppState:
        return app_state(app)

    def db(self) -> SQLAlchemy:
        return app_state().db

    def store(self) -> Store:
        """The current app's store (built on first use, inside an app context)."""
        return app_state().store

    def allowed_modules(self) -> list[str]:
        return app_state().allowed_modules

    def folder(self) -> Path:
        """Where attached files live: ``TACHES_FOLDER`` or ``instance/taches``."""
        return app_state().folder

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
        columns of :data:`TACHE_OPTIONS`. ``commit=False`` only inserts, so the
        task is enqueued with the caller's own transaction.
        """
        row = self._prepare(tache, owner=owner, options=options, defaults=_Defaults.read())
        return self._save([row], fichiers=[fichier], commit=commit)[0]

    def add_many(self, taches: Iterable[Tache | str], *, commit: bool = True) -> list[int]:
        """Save many tasks in one transaction (the bulk form of :meth:`add`).

        One INSERT statement per batch of rows where the database returns the
        new ids in order (SQLite, PostgreSQL, MariaDB); the ids come back in
        the order of ``taches``.
        """
        defaults = _Defaults.read()
        prepared = [self._prepare(t, owner=_UNSET, options={}, defaults=defaults) for t in taches]
        if not prepared:
            return []
        return self._save(prepared, fichiers=None, commit=commit)

    def chain(self, *taches: Tache | str, commit: bool = True) -> list[int]:
        """Save tasks that run one after the other; the first is TO_RUN, the rest WAITING.

        Each one starts when the one before COMPLETES; if one ends otherwise,
        the rest of the chain is CANCELLED with a log saying why.
        """
        if len(taches) < 2:
            raise InvalidTache("a chain needs at least two tasks")
        defaults = _Defaults.read()
        prepared = [self._prepare(t, owner=_UNSET, options={}, defaults=defaults) for t in taches]
        for waiting in prepared[1:]:
            waiting.values["status"] = Status.WAITING.value
        return self._save(prepared, fichiers=None, commit=commit, chained=True)

    def _prepare(
        self, tache: Tache | str, *, owner: Any, options: dict[str, Any], defaults: _Defaults
    ) -> NewRow:
        """The checked column values of a new task (no ORM work for a method string)."""
        unknown = set(options) - _OPTION_SET
        if unknown:
            raise InvalidTache(f"unknown option(s) for add(): {', '.join(sorted(unknown))}")
        if isinstance(tache, str):
            values: dict[str, Any] = {"method": tache, **_BLANK}
            source = None
        elif isinstance(tache, Tache):
            if tache.id is not None:
                raise InvalidTache(f"task {tache.id} is already saved")
            values = _values_of(tache)
            source = tache
        else:
            raise InvalidTache(
                f"add() takes a Tache or a method string, not {type(tache).__name__}"
            )
        values.update(options)
        self.check_method(values["method"])
        values["parametres"] = json_object("parametres", values["parametres"])
        values["parametres_caches"] = (
            json_object("parametres_caches", values["parametres_caches"]) or None
        )
        if owner is not _UNSET:
            values["owner"] = owner
        elif values["owner"] is None:
            values["owner"] = auth.current_owner()
        defaults.apply(values)
        validation.validate(values)  # what every database can store
        return NewRow(values, source)

    def check_method(self, method: str) -> None:
        """Refuse a method outside ``TACHES_ALLOWED_MODULES`` or that does not resolve.

        A method accepted once is remembered per app and per allowlist (see
        :class:`~flask_taches.inserting.CheckedMethods`).
        """
        app_state().checked_methods.check(method, self.allowed_modules())

    def _save(
        self,
        rows: Sequence[NewRow],
        *,
        fichiers: Sequence[Any] | None,
        commit: bool,
        chained: bool = False,
    ) -> list[int]:
        session = self.db().session()
        for row in rows:
            if row.tache is not None and row.tache in session:
                session.expunge(row.tache)  # added by the caller: we insert it, not the flush
        # The session's own connection: commit=False joins the caller's transaction.
        conn = session.connection(bind_arguments={"mapper": Tache})
        saved: list[Path] = []
        adopted: list[Tache] = []
        store = self.store()
        try:
            ids = store.insert(conn, [row.values for row in rows])
            if chained:
                store.link_chain(conn, ids)
                for row, next_id in zip(rows, ids[1:], strict=False):
                    row.values["next_id"] = next_id
            for row, tache_id, fichier in zip(rows, ids, fichiers or (), strict=False):
                if fichier is not None:
                    folder = self._fichier_folder(tache_id)
                    saved.append(folder)
                    row.values["fichier"] = store_fichier(folder, fichier)
                    store.set_fichier(conn, tache_id, row.values["fichier"])
            adopted = adopt(session, rows, ids)
            if commit:
                session.commit()
        except BaseException:
            session.rollback()
            disown(session, adopted)
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
        tache_id = int(tache_id)
        if not 0 < tache_id <= MAX_ID:
            return None  # the column cannot hold it (PostgreSQL would raise)
        self._fresh_read()
        return self.db().session.get(Tache, tache_id, populate_existing=True)

    def get_or_raise(self, tache_id: int) -> Tache:
        tache = self.get(tache_id)
        if tache is None:
            raise no_such_task(tache_id)
        return tache

    def latest(self, signature: str) -> Tache | None:
        """The newest task with this signature (the bundle's "latest task" view)."""
        self._fresh_read()
        query = select(Tache).where(Tache.signature == signature).order_by(Tache.id.desc())
        return (
            self.db()
            .session.scalars(query.limit(1).execution_options(populate_existing=True))
            .first()
        )

    def _fresh_read(self) -> None:
        """End an idle read transaction, whose snapshot may be old, before reading.

        MySQL/MariaDB's REPEATABLE READ (and any snapshot isolation) keeps
        showing the rows as of the transaction's first read, so a caller
        polling ``get()`` would never see its task end. A session holding the
        caller's work is left as it is: it reads its own writes.
        """
        session = self.db().session
        if session.registry.has() and not sessions.has_changes(session):
            session.rollback()

    def cancel(self, tache: Tache | int, *, who: str | None = None) -> Status | None:
        """Cancel a task; a RUNNING one is stopped by its own process, on any host.

        Returns the status now stored (RUNNING while the stop is under way), or
        None when the task had already finished.
        """
        tache_id = _id_of(tache)
        self._release_session("cancel")
        status = self.store().request_cancel(tache_id, who or auth.current_owner() or "cli")
        self._refresh(tache)
        return status

    def restart(self, tache: Tache | int) -> None:
        """Put a FAILED, INTERRUPTED, CANCELLED or COMPLETED task back to TO_RUN."""
        tache_id = _id_of(tache)
        self._release_session("restart")
        self.store().restart(tache_id)
        self._refresh(tache)

    def delete(self, tache: Tache | int) -> None:
        """Delete a task that is not RUNNING, with its attached file."""
        tache_id = _id_of(tache)
        self._release_session("delete")
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
        self._release_session("purge")
        deleted = 0
        while ids := self.store().purge_batch(wanted, cutoff, PURGE_BATCH):
            for tache_id in ids:
                remove_folder(self._fichier_folder(tache_id))
            deleted += len(ids)
        return deleted

    def _release_session(self, action: str) -> None:
        """End the request's read transaction before the store writes on its own.

        A session holding the caller's work (written or pending) is never
        rolled back: :class:`UncommittedSession` says to commit it first. On
        SQLite the store would otherwise wait for the caller's own write lock.
        """
        session = self.db().session
        if sessions.has_changes(session):
            raise UncommittedSession(
                f"commit db.session before {action}(): it holds uncommitted changes"
            )
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
    return as_utc(value)


_TO_RUN = Status.TO_RUN.value
_NEW_STATUSES = (Status.TO_RUN.value, Status.WAITING.value)
_OPTION_SET = frozenset(TACHE_OPTIONS)
#: Columns every new row sets, whatever it was built from (one compiled INSERT).
_BASE_COLUMNS = (
    "method",
    "parametres",
    "parametres_caches",
    "signature",
    "owner",
    "status",
    "logs",
    "created_at",
    "run_at",
    "priority",
    "queue",
    "attempts",
    "max_attempts",
    "timeout",
)
#: A method string's row before options: what ``Tache(method=...)`` would hold.
_BLANK: dict[str, Any] = {key: None for key in _BASE_COLUMNS if key != "method"}
_OTHER_COLUMNS = frozenset(taches_table.c.keys()) - {"id", *_BASE_COLUMNS}


def _values_of(tache: Tache) -> dict[str, Any]:
    """A caller's :class:`Tache` as column values (other columns it set included)."""
    given = instance_dict(tache)  # what was set; an unset column reads None
    values = {key: given.get(key) for key in _BASE_COLUMNS}
    for key in _OTHER_COLUMNS.intersection(given):
        if given[key] is not None:
            values[key] = given[key]
    return values


@dataclass(frozen=True)
class _Defaults:
    """The settings a new task's defaults come from, read once per call."""

    queue: str
    max_attempts: int
    timeout: float | None

    @classmethod
    def read(cls) -> _Defaults:
        cfg = current_app.config
        return cls(cfg["TACHES_DEFAULT_QUEUE"], cfg["TACHES_MAX_ATTEMPTS"], cfg["TACHES_TIMEOUT"])

    def apply(self, values: dict[str, Any]) -> None:
        """Fill and check the columns a caller may leave out."""
        now = utcnow()
        status = values["status"] or _TO_RUN
        if status not in _NEW_STATUSES:
            raise InvalidTache(f"a new task is TO_RUN or WAITING, not {status}")
        values["status"] = Status(status).value
        values["created_at"] = now
        run_at = values["run_at"]
        values["run_at"] = _utc(run_at) if run_at is not None else now
        values["queue"] = values["queue"] or self.queue
        values["priority"] = int(values["priority"] or 0)
        values["attempts"] = 0
        max_attempts = values["max_attempts"]
        max_attempts = int(self.max_attempts if max_attempts is None else max_attempts)
        if max_attempts < 1:
            raise InvalidTache("max_attempts must be at least 1")
        values["max_attempts"] = max_attempts
        timeout = values["timeout"]
        if timeout is None:
            timeout = self.timeout
        if timeout is not None and not timeout > 0:
            raise InvalidTache("timeout must be a positive number of seconds")
        values["timeout"] = timeout
        values["logs"] = list(values["logs"] or [])
