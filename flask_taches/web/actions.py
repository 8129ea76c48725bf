"""The actions on one task: cancel, restart or delete (the bulk ones are in :mod:`.bulk`).

Actions are POST only and CSRF-checked; they answer JSON to ``fetch``
(``Accept: application/json`` or ``X-Requested-With: fetch``) and redirect a
plain form post back to where it came from (:mod:`.redirects`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import jsonify, redirect

from .. import auth
from ..exceptions import InvalidTransition
from ..models import Tache
from ..state import app_state
from . import csrf
from .answers import fail, http_errors, live_data, no_store, wants_json
from .blueprint import blueprint
from .redirects import back_from_action
from .rows import shown_or_404

if TYPE_CHECKING:
    from ..service import TaskService

#: The actions on one task, each a route ``POST /<id>/<action>`` and endpoint ``taches.<action>``.
ONE_TASK_ACTIONS = ("cancel", "restart", "delete")


def act_on(tache_id: int, action: str) -> Any:
    """Check the token and the right, ask the service, answer JSON or a redirect."""
    csrf.check()
    tache = shown_or_404(tache_id)
    if not auth.can(tache, action):
        fail(403, f"you may not {action} task {tache_id}")
    before = live_data(tache) if action == "delete" else None
    apply_action(app_state().service, tache, action)
    if wants_json():
        if before is not None:
            data = {**before, "deleted": True, "status_html": "", "result_html": ""}
        else:
            data = live_data(shown_or_404(tache_id))
        return no_store(jsonify(tache=data))
    return redirect(back_from_action(tache_id, deleted=action == "delete"), code=303)


def apply_action(service: TaskService, tache: Tache, action: str) -> None:
    if action == "cancel":
        if service.cancel(tache, who=auth.current_owner() or "web") is None:
            raise InvalidTransition(f"task {tache.id} is {tache.status}: nothing to cancel")
    elif action == "restart":
        service.restart(tache)
    else:
        service.delete(tache)


def _action_view(action: str) -> Callable[[int], Any]:
    def view(tache_id: int) -> Any:
        return act_on(tache_id, action)

    view.__name__ = action
    view.__doc__ = f"POST: {action} one task (CSRF token required)."
    return csrf.checks_its_own(http_errors(view))


for _name in ONE_TASK_ACTIONS:
    blueprint.add_url_rule(
        f"/<int:tache_id>/{_name}", endpoint=_name, view_func=_action_view(_name), methods=["POST"]
    )
