"""``TaskService``: the service API the application, the pages and the CLI call.

Each verb works on the current app (through :func:`~flask_taches.state.app_state`),
so one object serves every app it was initialised on. The verbs only check
the caller's input and ask the store (:mod:`flask_taches.store`), which holds
every statement; what each verb does lives in the module named for it
(:mod:`.adding`, :mod:`.reading`, :mod:`.actions`, :mod:`.rescue`).

Two kinds of verbs. For an application's views, the ones that see as the
current user (:func:`flask_taches.auth.can`): ``get_or_404``, ``get_visible``,
``visible_latest``, ``can``, and ``cancel``/``restart``/``delete`` with
``check=True``. For trusted server code (the CLI, scripts, tasks, the
manager): ``get``, ``get_or_raise``, ``latest``, ``latest_ids`` and the actions
without ``check``, which see and change every task whoever asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from .. import auth
from ..models import Tache
from ..state import AppState, app_state
from ..status import Status
from ..store import Rescued, Store
from . import actions, adding, groups, reading, rescue, schedules
from .new_rows import OWNER_UNSET, NewRowRules


class TaskService:
    """Add, read and act on the current app's tasks."""

    # -- the current app's state --------------------------------------------------------

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

    # -- adding -----------------------------------------------------------------------------

    def add(
        self,
        tache: Tache | str,
        *,
        owner: str | None = OWNER_UNSET,
        fichier: Any = None,
        commit: bool = True,
        **options: Any,
    ) -> int:
        """Save a new task as TO_RUN and return its id.

        ``tache`` is a :class:`Tache` or a method string; ``options`` are the
        columns of :data:`~.new_rows.TACHE_OPTIONS`. ``commit=False`` only
        inserts, so the task is enqueued with the caller's own transaction.
        """
        return adding.add_one(tache, owner=owner, fichier=fichier, commit=commit, options=options)

    def schedules(self) -> list[dict[str, Any]]:
        """The periodic tasks: their declaration, the last slot added, the next one."""
        return schedules.schedules()

    def add_many(self, taches: Iterable[Tache | str], *, commit: bool = True) -> list[int]:
        """Save many tasks in one transaction (the bulk form of :meth:`add`).

        One INSERT statement per batch of rows where the database returns the
        new ids in order (SQLite, PostgreSQL, MariaDB); the ids come back in
        the order of ``taches``.
        """
        return adding.add_all(taches, commit=commit)

    def chain(self, *taches: Tache | str, commit: bool = True) -> list[int]:
        """Save tasks that run one after the other; the first is TO_RUN, the rest WAITING.

        Each one starts when the one before COMPLETES, with that one's result
        as its parameter ``previous``; if one ends otherwise, the rest of the
        chain is CANCELLED with a log saying why.
        """
        return adding.add_chain(taches, commit=commit)

    def group(self, *taches: Tache | str, then: Tache | str, commit: bool = True) -> list[int]:
        """Save tasks that run in parallel, and ``then`` once all of them have COMPLETED.

        ``then`` gets the list of their results (in this order) as its parameter
        ``previous``; if one of them ends otherwise, ``then`` is CANCELLED with a
        log saying which. Returns the ids of the tasks, then the id of ``then``.
        """
        return groups.add_group(taches, then, commit=commit)

    def check_method(self, method: str) -> None:
        """Refuse a method outside ``TACHES_ALLOWED_MODULES`` or that does not resolve.

        A method accepted once is remembered per app and per allowlist (see
        :class:`~flask_taches.methods.MethodCheck`).
        """
        NewRowRules.of(app_state()).check_method(method)

    # -- reading ----------------------------------------------------------------------------

    def get(self, tache_id: int) -> Tache | None:
        """The task with this id, fresh from the database, or None."""
        return reading.get(tache_id)

    def get_or_raise(self, tache_id: int) -> Tache:
        """The task with this id; :class:`~flask_taches.TacheNotFound` when there is none."""
        return reading.get_or_raise(tache_id)

    def latest(self, signature: str) -> Tache | None:
        """The newest task with this signature, whoever it belongs to (trusted code)."""
        return reading.latest(signature)

    def latest_ids(self, signatures: Sequence[str]) -> dict[str, int]:
        """The newest task id of each signature, whoever it belongs to (trusted code)."""
        return reading.latest_ids(signatures)

    # -- reading as the current user ------------------------------------------------------

    def get_visible(self, tache_id: int) -> Tache | None:
        """The task if the current user may see it, else None (missing or not theirs alike).

        Its ``parametres_caches`` is not loaded (touching it raises): safe for a template.
        """
        return reading.get_visible(tache_id)

    def get_or_404(self, tache_id: int) -> Tache:
        """:meth:`get_visible`, or ``abort(404)``: the same answer for missing and not yours."""
        return reading.get_or_404(tache_id)

    def visible_latest(self, signature: str) -> Tache | None:
        """The newest task of this signature that the current user may see, or None.

        Another user's newer task of the same signature neither hides theirs
        nor shows that it exists.
        """
        return reading.visible_latest(signature)

    def visible_batch(
        self, ids: Sequence[int], signatures: Sequence[str]
    ) -> tuple[dict[int, Tache], dict[str, Tache]]:
        """The tasks of ``ids`` and the newest of each signature that the current user may see."""
        return reading.visible_batch(ids, signatures)

    @staticmethod
    def can(tache: Tache, action: str = "view") -> bool:
        """May the current user do ``action`` (view, cancel, restart, delete, fichier)?"""
        return auth.can(tache, action)

    def fichier_path(self, tache: Tache) -> Path | None:
        """Absolute path of a task's attached file, or None."""
        return reading.fichier_path(tache)

    def stats(self, windows: Sequence[int] = (1, 5, 15)) -> dict[str, Any]:
        """Counts by status and queue, oldest ready TO_RUN age, tasks ended per window.

        ``windows`` are in minutes (what ``flask taches stats`` prints).
        """
        return reading.stats(windows)

    # -- acting -----------------------------------------------------------------------------

    def cancel(
        self, tache: Tache | int, *, who: str | None = None, check: bool = False
    ) -> Status | None:
        """Cancel a task; a RUNNING one is stopped by its own process, on any host.

        Returns the status now stored (RUNNING while the stop is under way), or
        None when the task had already finished. ``check=True``: only if the
        current user may (else :class:`TacheNotFound` for a task they may not
        see, :class:`~flask_taches.auth.NotAllowed` for one they may not cancel).
        """
        return actions.cancel(tache, who=who, check=check)

    def restart(self, tache: Tache | int, *, check: bool = False) -> None:
        """Put a FAILED, INTERRUPTED, CANCELLED or COMPLETED task back to TO_RUN.

        ``check=True``: only if the current user may (as :meth:`cancel`).
        """
        actions.restart(tache, check=check)

    def delete(self, tache: Tache | int, *, check: bool = False) -> None:
        """Delete a task that is not RUNNING, with its attached file.

        ``check=True``: only if the current user may (as :meth:`cancel`).
        """
        actions.delete(tache, check=check)

    def purge(self, older_than: timedelta, statuses: Iterable[str] | None = None) -> int:
        """Delete finished tasks that ended more than ``older_than`` ago; how many.

        Only COMPLETED, FAILED, INTERRUPTED and CANCELLED tasks (or those of
        ``statuses``, which must be finished ones) go, with their files, in
        batches of :data:`~.actions.PURGE_BATCH` so no transaction holds the
        table long.
        """
        return actions.purge(older_than, statuses)

    def rescue_stale(self) -> list[Rescued]:
        """INTERRUPT RUNNING tasks whose heartbeat stopped, before a page shows them.

        At most once per ``TACHES_HEARTBEAT`` seconds per process; a task of
        this very host whose process lives is left to its timeout, as a
        manager would. Returns what was rescued.
        """
        return rescue.rescue_stale()
