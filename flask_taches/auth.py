"""Who is asking, and may they see or act on a task.

One rule for every route, helper and the service API:

* the identity comes from ``@taches.identity_loader``, else ``TACHES_IDENTITY``
  (a callable or a dotted path), else Flask-Login's ``current_user`` when the
  application uses Flask-Login; it is only consulted inside a request;
* ``@taches.authorize`` (or ``TACHES_AUTHORIZE``), when set, decides alone;
* otherwise an admin (``TACHES_IS_ADMIN``) may do anything, a task with an owner
  belongs to that owner only, and a task without one is shared by whoever can
  reach the blueprint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app, has_request_context

from .exceptions import ConfigurationError
from .loading import locate

if TYPE_CHECKING:
    from .models import Tache

#: Actions the authorization hook is asked about.
ACTIONS = ("view", "cancel", "restart", "delete", "fichier")


def _setting_callable(name: str) -> Callable[..., Any] | None:
    value = current_app.config.get(name)
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            return locate(value).attr
        except Exception as exc:
            raise ConfigurationError(f"{name}={value!r} does not name a callable") from exc
    raise ConfigurationError(f"{name} must be a callable or a dotted path, not {value!r}")


def _hooks() -> Any:
    return current_app.extensions["taches"]


def current_owner() -> str | None:
    """The identity of the user of the current request, or None outside one."""
    if not has_request_context():
        return None
    loader = _hooks()._identity_loader or _setting_callable("TACHES_IDENTITY")
    if loader is not None:
        identity = loader()
        return None if identity is None else str(identity)
    return _flask_login_identity()


def _flask_login_identity() -> str | None:
    if "login_manager" not in current_app.extensions and not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user  # only imported for apps that use it

    if not getattr(current_user, "is_authenticated", False):
        return None
    return str(current_user.get_id())


def is_admin() -> bool:
    """``TACHES_IS_ADMIN`` (or ``@taches.admin_loader``); False outside a request."""
    if not has_request_context():
        return False
    predicate = _hooks()._admin_predicate or _setting_callable("TACHES_IS_ADMIN")
    return bool(predicate()) if predicate is not None else False


def can(tache: Tache, action: str = "view") -> bool:
    """May the current user do ``action`` on ``tache``? The one check everyone uses."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    hook = _hooks()._authorize or _setting_callable("TACHES_AUTHORIZE")
    if hook is not None:
        return bool(hook(tache, action))
    if is_admin():
        return True
    if tache.owner is None:
        return True
    return tache.owner == current_owner()
