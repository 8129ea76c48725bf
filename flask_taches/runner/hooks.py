"""After an attempt's end is recorded, in the task's process: the signal, then its hook.

``add(..., on_success="app.hooks:notify", on_failure="app.hooks:alert")``
stores dotted paths (checked against ``TACHES_ALLOWED_MODULES`` when added).
Once the runner has recorded the end, it sends ``tache_finished`` and calls
``on_success`` when the row is COMPLETED, ``on_failure`` when it is FAILED or
INTERRUPTED (for good: a scheduled retry calls neither, nor does CANCELLED).

A hook gets its arguments by name as a task does: ``tache`` (the row as now
recorded, status and result included), ``app``, ``db``, ``status``, and the
registered services. Its error is logged and changes nothing: the end is
recorded already.
"""

from __future__ import annotations

import logging

from flask import Flask

from ..injection import Injector, bind
from ..methods import locate
from ..models import Tache
from ..signals import send, tache_finished
from ..state import app_state
from ..status import Status
from ..store import Store

logger = logging.getLogger("flask_taches.runner")

#: Which hook an end calls.
HOOK_OF = {
    Status.COMPLETED: "on_success",
    Status.FAILED: "on_failure",
    Status.INTERRUPTED: "on_failure",
}


def after_end(app: Flask, store: Store, tache: Tache, attempt: int, final: Status | None) -> None:
    """The signal and the hook of an end this process recorded (``final``; None: fenced out)."""
    if final is None:
        return
    send(tache_finished, app, tache_id=tache.id, attempt=attempt, status=final)
    hook = HOOK_OF.get(final)
    path = getattr(tache, hook) if hook else None
    if not path:
        return
    try:
        _call(app, store, tache.id, path, final)
    except Exception:
        logger.exception(
            "task %s: its %s hook %s failed",
            tache.id,
            hook,
            path,
            extra={"action": "hook_error", "tache_id": tache.id},
        )


def _call(app: Flask, store: Store, tache_id: int, path: str, final: Status) -> None:
    state = app_state(app)
    row = store.get_row(tache_id)
    if row is None:
        return  # deleted meanwhile: nothing to tell about
    ended = Tache(**row)
    target = locate(path, state.allowed_modules)
    builtins = {"tache": ended, "app": app, "db": state.db, "status": final}
    bind(target, Injector(builtins, state.hooks.services, {}))()
