"""What flask-taches keeps for one application, and the one way to reach it.

:func:`app_state` is the only reader of ``app.extensions``: every layer (the
service, the web pages, the CLI, the manager and the runner) asks it for the
app's :class:`AppState`. The extension object is shared by every app it was
initialised on; its :class:`Hooks` (services, identity, admin, authorize) are
the same for all of them, while each app has its own ``db`` and store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from .exceptions import ConfigurationError
from .injection import Service
from .methods import MethodCheck
from .provided import check_provided
from .scheduling import Defaults, Planned, ScheduleBook, planned

if TYPE_CHECKING:
    from .service import TaskService
    from .store import Store

#: Keys of ``app.extensions``: the extension object (Flask's convention) and its state.
EXTENSION_KEY = "taches"
STATE_KEY = "taches.state"


@dataclass
class Hooks:
    """What an application plugs into flask-taches (set through the extension's decorators)."""

    #: Injectable into tasks by parameter name (``register_service``).
    services: dict[str, Service] = field(default_factory=dict)
    #: ``() -> identity``: the current user's identity, the owner of what they add.
    identity_loader: Callable[[], Any] | None = None
    #: ``() -> bool``: whether the current user is an admin.
    admin_loader: Callable[[], bool] | None = None
    #: ``(tache, action) -> bool``: replaces the default rule of who may do what.
    authorize: Callable[[Any, str], bool] | None = None
    #: ``(ids) -> None``: called once added tasks are committed (eager mode runs them).
    after_add: Callable[[Sequence[int]], None] | None = None
    #: Periodic tasks declared in code (``schedule``, ``@periodic``).
    schedules: ScheduleBook = field(default_factory=ScheduleBook)


@dataclass
class AppState:
    """One application's flask-taches: its database, store, hooks and caches."""

    app: Flask
    db: SQLAlchemy
    hooks: Hooks
    #: The service API of this app (the ``TachesExtension`` initialised on it).
    service: TaskService
    #: Methods ``add()`` already accepted on this app (import + allowlist check).
    checked_methods: MethodCheck = field(default_factory=MethodCheck)
    #: Monotonic time of the last stale-RUNNING rescue a page triggered.
    last_page_rescue: float = float("-inf")
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> Any:
        return self.app.config

    @property
    def store(self) -> Store:
        """The app's store, built on first use (inside an app context: it needs the engine)."""
        if self._store is None:
            from .store import for_engine

            self._store = for_engine(
                self.db.engine, retry_base=float(self.config["TACHES_RETRY_DELAY"])
            )
        return self._store

    @property
    def built_store(self) -> Store | None:
        """The store if it was built already (a forked child must not build one to drop it)."""
        return self._store

    @property
    def allowed_modules(self) -> list[str]:
        """``TACHES_ALLOWED_MODULES``, or the application's own top-level package."""
        allowed = self.config.get("TACHES_ALLOWED_MODULES")
        if allowed:
            return [allowed] if isinstance(allowed, str) else list(allowed)
        return [self.app.import_name.split(".")[0]]

    @property
    def folder(self) -> Path:
        """Where attached files live: ``TACHES_FOLDER`` or ``instance/taches``."""
        folder = self.config.get("TACHES_FOLDER")
        return Path(folder) if folder else Path(self.app.instance_path) / "taches"

    def schedules(self) -> list[Planned]:
        """The app's schedules (code and ``TACHES_SCHEDULE``), methods checked."""
        cfg = self.config
        defaults = Defaults(
            cfg["TACHES_DEFAULT_QUEUE"], cfg["TACHES_MAX_ATTEMPTS"], cfg["TACHES_TIMEOUT"]
        )
        return planned(self.hooks.schedules, cfg["TACHES_SCHEDULE"], defaults, self._check_method)

    def _check_method(self, method: str, parametres: dict[str, Any]) -> None:
        """A schedule's method imports, and nothing it requires is left unprovided."""
        self.checked_methods.check(method, self.allowed_modules)
        check_provided(method, self.allowed_modules, self.hooks.services, [parametres])

    def fichier_folder(self, tache_id: int) -> Path:
        """The folder of one task's attached file."""
        return self.folder / str(int(tache_id))


def app_state(app: Flask | None = None) -> AppState:
    """The flask-taches state of ``app`` (default: the current app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        state: AppState = app.extensions[STATE_KEY]
    except KeyError:
        raise ConfigurationError("flask-taches is not initialised on this app") from None
    return state


def register(app: Flask, extension: Any, state: AppState) -> None:
    """Record ``extension`` and its state on ``app`` (the only writer of those keys)."""
    app.extensions[EXTENSION_KEY] = extension
    app.extensions[STATE_KEY] = state


def is_registered(app: Flask) -> bool:
    return EXTENSION_KEY in app.extensions
