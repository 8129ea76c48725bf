"""CSRF tokens for the action forms and the ``fetch`` calls of ``status.js``.

When the application uses Flask-WTF's ``CSRFProtect`` (``app.extensions["csrf"]``),
its token and its check are used, so one token serves the whole site. Otherwise
the extension signs its own token with the application's ``SECRET_KEY``
(itsdangerous), bound to a random value kept in the session: a token taken from
another session or forged without the key is refused.

Either way the token is read from the form field ``csrf_token`` or the
``X-CSRFToken`` header.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request, session
from itsdangerous import BadData, URLSafeTimedSerializer

from ..exceptions import ConfigurationError, TacheError

FIELD_NAME = "csrf_token"
HEADERS = ("X-CSRFToken", "X-CSRF-Token")
SESSION_KEY = "_taches_csrf"
SALT = "flask-taches-csrf"
MAX_AGE = 24 * 3600  # seconds a signed token stays valid (the session binds it too)
_TOKEN_KEY = "flask_taches.csrf_token"  # one token per request, kept in its environ

F = TypeVar("F", bound=Callable[..., Any])


class CSRFError(TacheError):
    """Missing or invalid CSRF token: reload the page and try again."""


def _wtf_csrf() -> object | None:
    """Flask-WTF's ``CSRFProtect`` of the current app, if it has one."""
    return current_app.extensions.get("csrf")


def _serializer() -> URLSafeTimedSerializer:
    secret = current_app.secret_key
    if not secret:
        raise ConfigurationError(
            "flask-taches signs its CSRF tokens with SECRET_KEY: set app.secret_key "
            "(or use Flask-WTF's CSRFProtect)"
        )
    return URLSafeTimedSerializer(secret, salt=SALT)


def token() -> str:
    """The CSRF token to put in a form or a ``fetch`` header (one per request)."""
    cached: str | None = request.environ.get(_TOKEN_KEY)
    if cached is not None:
        return cached
    if _wtf_csrf() is not None:
        from flask_wtf.csrf import generate_csrf  # only for apps that use Flask-WTF

        value = str(generate_csrf())
    else:
        serializer = _serializer()
        if SESSION_KEY not in session:
            session[SESSION_KEY] = secrets.token_hex(32)
        value = str(serializer.dumps(session[SESSION_KEY]))
    request.environ[_TOKEN_KEY] = value
    return value


def submitted_token() -> str | None:
    """The token the request carries, from the form or a header."""
    value = request.form.get(FIELD_NAME)
    if value:
        return value
    for header in HEADERS:
        value = request.headers.get(header)
        if value:
            return value
    return None


def check() -> None:
    """Raise :class:`CSRFError` unless the request carries a valid token."""
    if _wtf_csrf() is not None:
        _check_wtf()
    else:
        _check_own()


def _check_wtf() -> None:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return  # the app turned CSRF off (as test suites often do): so do we
    from flask_wtf.csrf import ValidationError, validate_csrf

    try:
        validate_csrf(submitted_token())
    except ValidationError as exc:
        raise CSRFError(f"CSRF check failed: {exc.args[0]}") from None


def _check_own() -> None:
    submitted = submitted_token()
    if not submitted:
        raise CSRFError("the CSRF token is missing: reload the page and try again")
    expected = session.get(SESSION_KEY)
    if not expected:
        raise CSRFError("no CSRF session: reload the page and try again")
    try:
        value = _serializer().loads(submitted, max_age=MAX_AGE)
    except BadData:
        raise CSRFError("the CSRF token is invalid or expired: reload the page") from None
    if not isinstance(value, str) or not hmac.compare_digest(value, expected):
        raise CSRFError("the CSRF token does not belong to this session: reload the page")


#: The views Flask-WTF's ``CSRFProtect`` lets through (``module.function``, as it names
#: them): the batch, a read; and the actions, which check the token themselves with
#: :func:`check` (Flask-WTF's own check when it is there), so that a refused token
#: answers JSON to a JSON client, where Flask-WTF's ``before_request`` would answer HTML.
OWN_CHECK: set[str] = set()


def checks_its_own(view: F) -> F:
    """Mark a view of the blueprint as one Flask-WTF leaves to :func:`check`."""
    OWN_CHECK.add(f"{view.__module__}.{view.__name__}")
    return view


def exempt_own_checks() -> None:
    """:func:`exempt_from_wtf` for every view of :data:`OWN_CHECK`."""
    for path in sorted(OWN_CHECK):
        exempt_from_wtf(path)


def exempt_from_wtf(endpoint_path: str) -> None:
    """Tell the app's ``CSRFProtect`` (if any) to let ``endpoint_path`` through.

    Called at ``init_app`` time and again before each request, so the order in
    which the application sets up Flask-WTF and flask-taches does not matter.
    """
    protect = _wtf_csrf()
    exempt = getattr(protect, "exempt", None)
    if exempt is not None:
        exempt(endpoint_path)
