"""How the routes answer: HTML or JSON, never cached, errors as one line.

Every route asks :func:`auth.can` about the task it touches; a task the user
may not see answers 404 exactly like one that does not exist
(:func:`flask_taches.web.rows.shown_or_404`), so ids cannot be probed. Every answer carries the
headers of :func:`protect`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from flask import Response, abort, current_app, jsonify, make_response, request

from ..exceptions import InvalidTransition, NotAllowed, TacheError, TacheNotFound
from ..models import Tache
from ..status import Status
from . import csrf, i18n
from .fragments import Fragments
from .templating import render_result, render_status

#: Routes that always answer JSON, errors included.
JSON_ENDPOINTS = frozenset({"taches.status_json", "taches.batch_status"})
#: What chooses between HTML and JSON, for ``Vary``.
NEGOTIATED_ON = ("Accept", "X-Requested-With")
#: The pages a browser shows whole: they refuse to be framed (clickjacking on their buttons).
PAGE_ENDPOINTS = frozenset({"taches.index", "taches.tache"})
#: The attached file: private data, never kept by a browser or a proxy.
DOWNLOAD_ENDPOINTS = frozenset({"taches.fichier"})
#: ``X-Frame-Options`` for the ``frame-ancestors`` it can say; another source list has none.
FRAME_OPTIONS = {"'none'": "DENY", "'self'": "SAMEORIGIN"}

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(TacheError):
    """The request is not valid."""


def wants_json() -> bool:
    """JSON for ``fetch`` and API clients, HTML for browsers and forms."""
    if request.endpoint in JSON_ENDPOINTS:
        return True
    if request.headers.get("X-Requested-With", "").lower() == "fetch":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def fail(code: int, message: str) -> NoReturn:
    """Stop with ``code`` and a one-line ``message`` (JSON ``{"error": …}`` when wanted).

    HTML errors go through ``abort`` so the application's own error pages apply.
    """
    if wants_json():
        response = make_response(jsonify(error=message), code)
        response.vary.update(NEGOTIATED_ON)
        abort(response)
    abort(code, description=message)


def http_errors(view: F) -> F:
    """Turn the service's refusals into HTTP answers, for one view."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except csrf.CSRFError as exc:
            fail(400, str(exc))
        except BadInput as exc:
            fail(400, str(exc))
        except TacheNotFound as exc:
            fail(404, str(exc))
        except NotAllowed as exc:
            fail(403, str(exc))
        except InvalidTransition as exc:
            fail(409, str(exc))

    return wrapper  # type: ignore[return-value]


def status_data(tache: Tache) -> dict[str, Any]:
    """``to_dict()`` (never ``parametres_caches``) plus ``finished`` and ``label``."""
    data = tache.to_dict()
    data["finished"] = Status(tache.status).is_finished
    data["label"] = i18n.status_label(tache.status)
    return data


def live_data(tache: Tache, fragments: Fragments | None = None) -> dict[str, Any]:
    """One task as the batch route gives it: :func:`status_data` and both fragments.

    Without ``logs``: a page polls this every few seconds for every task it
    shows, and a long task's log would travel each time; ``result_html``
    carries the logs summary and ``/<id>/status.json`` the full log.
    ``fragments``: one renderer for a whole batch (:class:`.fragments.Fragments`).
    """
    data = status_data(tache)
    del data["logs"]
    if fragments is None:
        data["status_html"] = str(render_status(tache))
        data["result_html"] = str(render_result(tache))
    else:
        data["status_html"] = str(fragments.status(tache))
        data["result_html"] = str(fragments.result(tache))
    return data


def no_store(response: Response, negotiated: bool = False) -> Response:
    """Live data: never cached; vary on what chose between HTML and JSON."""
    response.headers["Cache-Control"] = "no-store"
    if negotiated:
        response.vary.update(NEGOTIATED_ON)
    return response


def html(markup: str) -> Response:
    return Response(markup, mimetype="text/html")


def task_answer(tache: Tache, render: Callable[[Tache], str]) -> Response:
    """``tache`` as JSON when the client asks for JSON, else ``render(tache)`` as HTML."""
    if wants_json():
        return no_store(jsonify(status_data(tache)), negotiated=True)
    return no_store(html(render(tache)), negotiated=True)


def protect(response: Response) -> Response:
    """The headers of every answer of the blueprint (its ``after_request``).

    ``nosniff`` everywhere (a text log served as ``text/plain`` is never run
    as a script); ``no-store`` on downloads, without the ``ETag`` and
    ``Last-Modified`` that would only serve to revalidate a kept copy; and
    ``frame-ancestors`` (``TACHES_FRAME_ANCESTORS``) on the pages.
    """
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint in DOWNLOAD_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
        for name in ("ETag", "Last-Modified"):
            response.headers.pop(name, None)
    if request.endpoint in PAGE_ENDPOINTS:
        ancestors = " ".join(str(current_app.config["TACHES_FRAME_ANCESTORS"]).split())
        response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
        if ancestors in FRAME_OPTIONS:
            response.headers["X-Frame-Options"] = FRAME_OPTIONS[ancestors]
    return response
