"""Running tasks in this very process, without a manager: eager mode and ``run_pending``.

Both go the runner's real way (:func:`~flask_taches.runner.run_claimed`):
the row is claimed, the task runs with its watchdog, and its status, logs,
progress and result are recorded as a manager's child would record them.
Each task runs in an application context of its own, so the runner's
clean-up of ``db.session`` at the task's end leaves the caller's session
(and the objects it holds) alone.

* ``TACHES_EAGER = True``: ``add()``, ``add_many()``, ``chain()``,
  ``group()`` and ``fn.delay()`` run the tasks they added once they are
  committed, then the tasks those released (a chain's next task, a group's
  callback); a retry runs at once, without its delay, until the task ends
  or its attempts are spent. With ``commit=False`` nothing can run before the
  caller commits: the tasks stay TO_RUN for a manager or :func:`run_pending`.
* :func:`run_pending` (``flask_taches.testing``): every ready task, in claim
  order, until none is left.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Sequence
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select

from .models import taches_table
from .state import app_state
from .status import Status

#: Runs one call of :func:`run_pending` makes before it decides something loops.
RUN_LIMIT = 10_000

T = taches_table.c


def run_added(ids: Sequence[int]) -> None:
    """After a committed add: in eager mode, run these tasks and what they release."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("TACHES_EAGER"):
        return
    pending = deque(ids)
    ran = 0
    while pending:
        tache_id = pending.popleft()
        status = _status(app, tache_id)
        while status is Status.TO_RUN:  # a retry runs at once
            ran += 1
            _check_limit(ran)
            status = _run_now(app, tache_id)
        pending.extend(next_id for next_id in _released_after(app, tache_id) if next_id not in ids)


def run_pending(app: Flask, *, limit: int = RUN_LIMIT) -> list[int]:
    """Run every ready task here, in claim order, until none is left; the ids run, in order.

    A task is ready when it is TO_RUN and its ``run_at`` has come (a retry
    scheduled later is not). Raises ``RuntimeError`` after ``limit`` runs:
    a task that keeps adding ready tasks would never let it return.
    """
    store = app_state(app).store
    ran: list[int] = []
    while True:
        with app.app_context():
            claimed = store.claim_batch(1, max_running=2**31 - 1, hostname=socket.gethostname())
        if not claimed:
            return ran
        ran.append(claimed[0].id)
        _check_limit(len(ran), limit)
        with app.app_context():
            _runner().run_claimed(claimed[0].id, claimed[0].attempt)


def _run_now(app: Flask, tache_id: int) -> Status | None:
    with app.app_context():  # a session of its own: the runner removes it at the end
        store = app_state(app).store
        attempt = store.claim_one(tache_id, hostname=socket.gethostname())
        return _runner().run_claimed(tache_id, attempt)


def _runner() -> Any:
    """The runner, imported on first use: a web process that never runs a task here
    does not load it."""
    from . import runner

    return runner


def _status(app: Flask, tache_id: int) -> Status | None:
    row = app_state(app).store.get_row(tache_id)
    return Status(row["status"]) if row is not None else None


def _released_after(app: Flask, tache_id: int) -> list[int]:
    """The task after this one (chain or group), if it is TO_RUN now."""
    store = app_state(app).store
    with store.read() as conn:
        next_id = conn.execute(select(T.next_id).where(T.id == tache_id)).scalar()
        if next_id is None:
            return []
        status = conn.execute(select(T.status).where(T.id == next_id)).scalar()
    return [next_id] if status == Status.TO_RUN.value else []


def _check_limit(ran: int, limit: int = RUN_LIMIT) -> None:
    if ran > limit:
        raise RuntimeError(f"{limit} tasks run and more are ready: do the tasks add each other?")
