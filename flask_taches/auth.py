"""Who is asking, and may they see or act on a task.

One rule for every route, helper and the service API:

* the identity comes from ``@taches.identity_loader``, else ``TACHES_IDENTITY``
  (a callable or a dotted path), else Flask-Login's ``current_user`` when the
  application uses Flask-Login; it is only consulted inside a request;
* ``@taches.authorize`` (or ``TACHES_AUTHORIZE``), when set, decides alone;
* otherwise an admin (``@taches.admin_loader`` or ``TACHES_IS_ADMIN``) may do
  anything, a task with an owner belongs to that owner only, and a task without
  one (added by cron, the CLI, a script) may be seen by whoever can reach the
  blueprint but only an admin may act on it: restarted, it would run again with
  its creator's hidden parameters. ``TACHES_SHARED_ACTIONS=True`` lets everyone
  act on it (0.1.0's rule).

Lists filter in SQL with :func:`visible_condition`, whose owner comparison is
exact on every database (the store's ``same_text``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import ColumnElement, or_

from .exceptions import ConfigurationError, NotAllowed, TacheError
from .methods import locate
from .models import Tache
from .state import Hooks, app_state

#: Actions the authorization hook is asked about.
ACTIONS = ("view", "cancel", "restart", "delete", "fichier")
#: What anyone may do on a task without an owner, unless ``TACHES_SHARED_ACTIONS``.
SHARED_BY_DEFAULT = frozenset({"view", "fichier"})


# Identity and admin are asked once per request (pages check every row they
# show); the answer is kept in the WSGI environ, which lives exactly as long as
# the request (``g`` may outlive it when a test pushes one app context).
_OWNER_KEY = "flask_taches.owner"
_ADMIN_KEY = "flask_taches.is_admin"


def _setting_callable(name: str) -> Callable[..., Any] | None:
    value = current_app.config.get(name)
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            return locate(value).attr
        except (TacheError, ImportError, AttributeError) as exc:
            raise ConfigurationError(f"{name}={value!r} does not name a callable") from exc
    raise ConfigurationError(f"{name} must be a callable or a dotted path, not {value!r}")


def _hooks() -> Hooks:
    return app_state().hooks


def current_owner() -> str | None:
    """The identity of the user of the current request, or None outside one.

    Asked once per request: the pages call it for every row they show.
    """
    if not has_request_context():
        return None
    cache = request.environ
    if _OWNER_KEY not in cache:
        cache[_OWNER_KEY] = _load_identity()
    owner: str | None = cache[_OWNER_KEY]
    return owner


def _load_identity() -> str | None:
    loader = _hooks().identity_loader or _setting_callable("TACHES_IDENTITY")
    identity = loader() if loader is not None else _flask_login_identity()
    if identity is None or identity == "":
        return None
    return str(identity)


def _flask_login_identity() -> Any:
    if getattr(current_app, "login_manager", None) is None:
        return None  # the application does not use Flask-Login
    try:
        from flask_login import current_user  # only for apps that use Flask-Login
    except ImportError:
        return None
    if not getattr(current_user, "is_authenticated", False):
        return None
    return current_user.get_id()


def is_admin() -> bool:
    """``@taches.admin_loader`` (or ``TACHES_IS_ADMIN``); False outside a request."""
    if not has_request_context():
        return False
    cache = request.environ
    if _ADMIN_KEY not in cache:
        predicate = _hooks().admin_loader or _setting_callable("TACHES_IS_ADMIN")
        cache[_ADMIN_KEY] = bool(predicate()) if predicate is not None else False
    admin: bool = cache[_ADMIN_KEY]
    return admin


def _custom_rule() -> Callable[..., Any] | None:
    return _hooks().authorize or _setting_callable("TACHES_AUTHORIZE")


def can(tache: Tache, action: str = "view") -> bool:
    """May the current user do ``action`` on ``tache``? The one check everyone uses."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    hook = _custom_rule()
    if hook is not None:
        return bool(hook(tache, action))
    if is_admin():
        return True
    if tache.owner is None:
        return action in SHARED_BY_DEFAULT or bool(current_app.config["TACHES_SHARED_ACTIONS"])
    return tache.owner == current_owner()


def may_act_on_some() -> bool:
    """Could the current user act on any task at all (the dashboard's "cancel all")?

    False for an anonymous user under the default rule while actions on shared
    tasks are closed: every task they may see is shared.
    """
    if _custom_rule() is not None or is_admin() or current_owner() is not None:
        return True
    return bool(current_app.config["TACHES_SHARED_ACTIONS"])


def check(tache: Tache, action: str) -> None:
    """Refuse in one line what :func:`can` refuses (:class:`NotAllowed`)."""
    if not can(tache, action):
        raise NotAllowed(f"you may not {action} task {tache.id}")


def visible_owners() -> list[str | None] | None:
    """The owners whose tasks the default rule shows, to filter lists in SQL.

    ``None`` means "no limit in SQL": an admin, or a custom ``authorize`` rule
    (then :func:`can` still filters every row). ``None`` inside the list stands
    for the shared tasks (no owner).
    """
    if _custom_rule() is not None or is_admin():
        return None
    owner = current_owner()
    return [owner, None] if owner is not None else [None]


def owner_is(owner: str | None) -> ColumnElement[bool]:
    """SQL: the task's owner is exactly ``owner`` (None: a shared task), on every database."""
    if owner is None:
        return Tache.owner.is_(None)
    return app_state().store.same_text(Tache.owner, owner)


def visible_condition() -> ColumnElement[bool] | None:
    """SQL: the tasks :func:`visible_owners` allows; None when SQL cannot limit them."""
    owners = visible_owners()
    if owners is None:
        return None
    return or_(*(owner_is(o) for o in owners))
