"""Blinker signals of a task's life, sent in the process where each event happens.

Connect a receiver as with Flask's own signals; the sender is the Flask app::

    from flask_taches.signals import tache_finished

    @tache_finished.connect_via(app)
    def count(app, tache_id, attempt, status, **extra): ...

* :data:`tache_added` (``tache_id``, ``method``, ``queue``): in the process that
  called ``add()``, ``add_many()`` or ``chain()`` (a web request, a script,
  ``flask taches add``), once per task, as soon as its row is inserted (with
  ``commit=False``: before the caller's commit);
* :data:`tache_started` (``tache``, ``attempt``): in the task's own process (the
  manager's fork or ``flask taches run``), once its start is recorded, before
  the task's code runs; ``tache`` is the task's own detached :class:`Tache`;
* :data:`tache_finished` (``tache_id``, ``attempt``, ``status``): in the task's
  own process once its end is recorded; ``status`` is what the row now holds,
  TO_RUN when a retry was scheduled. A process that dies (``kill -9``, out of
  memory) sends nothing: the end recorded for it (by its manager, another
  manager's rescue, or a page's) is sent in the process that recorded it.

A receiver that raises is logged and does not change the task: its end is
recorded already. Receivers run in the manager's children, so connect them
where the app is built (the app factory), not in a request.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace
from flask import current_app, has_app_context

_signals = Namespace()

tache_added = _signals.signal("tache-added")
tache_started = _signals.signal("tache-started")
tache_finished = _signals.signal("tache-finished")

logger = logging.getLogger(__name__)


def finished_elsewhere(tache_id: int, attempt: int, status: Any) -> None:
    """``tache_finished`` for an end recorded on a task's behalf, by the current app."""
    if tache_finished.receivers:
        app = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
        send(tache_finished, app, tache_id=tache_id, attempt=attempt, status=status)


def send(signal: NamedSignal, sender: Any, **data: Any) -> None:
    """Send ``signal``; a receiver's error is logged, never raised into the task's path."""
    if not signal.receivers:
        return  # the common case costs nothing
    try:
        signal.send(sender, **data)
    except Exception:
        logger.exception("a receiver of %s failed", signal.name)
