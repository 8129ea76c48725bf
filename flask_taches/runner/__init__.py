"""Run one task in this process: resolve, inject, call, record.

:func:`run_one` is ``flask taches run ID``: it checks the method, claims the
row and runs it. :func:`run_claimed` runs a row that is already RUNNING for a
given attempt (claimed by a manager, or by :func:`run_one`); the manager's fork
executor calls it in the child, its subprocess executor through
``flask taches run ID --attempt N``.

The package, one concept a module:

* :mod:`.attempt`: one attempt, from its recorded start to its recorded end;
  the task runs in the calling thread;
* :mod:`.outcome`: how the call ended (the return value judged, the
  exception's log entry, :class:`TacheStopped`);
* :mod:`.watchdog`: the thread beside the task that writes its logs live,
  beats, and watches cancel, timeout and fencing;
* :mod:`.live`: the task's logs and progress, collected for the watchdog;
* :mod:`.hiding`: the mask of the task's ``parametres_caches`` in all that is
  kept or shown of it (logs, progress label, result, console);
* :mod:`.stopping`: who stops the task and who records its end, as phases.
  To stop the task, the watchdog sends :data:`INTERRUPT_SIGNAL` (SIGUSR1) to
  the main thread, whose handler raises :class:`TacheStopped`; SIGTERM and
  SIGINT from outside end the attempt INTERRUPTED. Signal handlers exist only
  in the main thread: called from another thread, the runner cannot interrupt
  the task, but still records the right end once the task returns;
* :mod:`.ending`: recording the end; a task deaf to its stop for
  ``TACHES_KILL_GRACE`` seconds has its end recorded by the watchdog, and its
  process leaves with ``os._exit``.

Every write is fenced by the attempt, so a late process changes nothing.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from ..console import Console
from ..exceptions import no_such_task
from ..methods import check_allowed
from ..state import app_state
from ..status import Status
from ..store.unique import refused_when_held
from .attempt import Attempt, Ran
from .stopping import INTERRUPT_SIGNAL, TacheStopped

__all__ = [
    "INTERRUPT_SIGNAL",
    "Ran",
    "TacheStopped",
    "run_claimed",
    "run_claimed_reporting",
    "run_one",
]

logger = logging.getLogger(__name__)


def run_one(tache_id: int, *, force: bool = False, verbosity: int = 0) -> Status | None:
    """Claim task ``tache_id`` and run it here (``flask taches run ID``).

    Raises :class:`TacheNotFound`, :class:`MethodRefused` (the row is left
    untouched) or :class:`InvalidTransition` (not TO_RUN and not ``force``).
    Returns the status stored at the end (TO_RUN when a retry was scheduled),
    None if another process took the row over meanwhile.
    """
    state = app_state()
    store = state.store
    row = store.get_row(tache_id)
    if row is None:
        raise no_such_task(tache_id)
    check_allowed(row["method"], state.allowed_modules)
    with refused_when_held(tache_id):  # a forced run makes a finished task live again
        attempt = store.claim_one(tache_id, force=force, hostname=socket.gethostname())
    return run_claimed(tache_id, attempt, verbosity=verbosity)


def run_claimed(
    tache_id: int,
    attempt: int,
    *,
    verbosity: int = 0,
    row: Mapping[str, Any] | None = None,
    for_manager: bool = False,
) -> Status | None:
    """Run a task already RUNNING with ``attempts == attempt``, in this process.

    Needs an app context. Returns the status stored at the end (TO_RUN when a
    retry was scheduled), None when the attempt is not (or no longer) the
    row's. Never leaves the row RUNNING when it returns normally.

    ``row`` is the row as a manager just claimed it, in the process it forked
    for the task: the manager records that process's pid, so nothing is read
    or written before the task runs (every later write is fenced as usual).

    Under a manager (a ``row`` it claimed, or ``for_manager``: a spawned ``run
    --attempt``) the output is in the manager's log format, each line with the id.
    """
    ran = run_claimed_reporting(
        tache_id, attempt, verbosity=verbosity, row=row, for_manager=for_manager
    )
    return ran.status


def run_claimed_reporting(
    tache_id: int,
    attempt: int,
    *,
    verbosity: int = 0,
    row: Mapping[str, Any] | None = None,
    for_manager: bool = False,
) -> Ran:
    """:func:`run_claimed`, also saying whether the task was stopped (a pool child asks)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    store = app_state(app).store
    prefix = tache_id if for_manager or row is not None else None
    console = Console(verbosity, task_id=prefix) if verbosity > 0 else None
    if row is not None:
        return Attempt(app, store, row, attempt, console, mark=False).run_reporting()
    row = store.get_row(tache_id)  # no write lock: SQLite writers are busy beating
    if row is None or row["status"] != Status.RUNNING.value or row["attempts"] != attempt:
        logger.warning(
            "task %s attempt %s is not RUNNING here: nothing to run",
            tache_id,
            attempt,
            extra={"action": "fenced", "tache_id": tache_id},
        )
        return Ran(None)
    return Attempt(app, store, row, attempt, console).run_reporting()
