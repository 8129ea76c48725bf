"""The ``taches`` blueprint: status fragments, JSON, batch, dashboard, actions.

Every route asks :func:`auth.can` about the task it touches; a task the user
may not see answers 404 exactly like one that does not exist, so ids cannot be
probed. Actions are POST only and CSRF-checked; they answer JSON to ``fetch``
(``Accept: application/json`` or ``X-Requested-With: fetch``) and redirect a
plain form post back to where it came from.
"""

from __future__ import annotations

import functools
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from sqlalchemy import Select, select
from sqlalchemy.orm import defer

from . import auth, csrf, i18n
from .exceptions import InvalidTransition, TacheError, TacheNotFound
from .models import Tache
from .processes import pid_alive
from .state import app_state
from .status import UNFINISHED, Status
from .templating import MAX_ID, render_result, render_status

if TYPE_CHECKING:
    from .extension import TachesExtension

PAGE_SIZE = 50  # tasks per dashboard page
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: int() would take "²" too, and fail
TEXT_FILTERS = ("method", "signature", "owner", "queue")
#: Routes that always answer JSON, errors included.
JSON_ENDPOINTS = frozenset({"taches.status_json", "taches.batch_status"})

F = TypeVar("F", bound=Callable[..., Any])

blueprint = Blueprint(
    "taches",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


class BadInput(TacheError):
    """The request is not valid."""


# -- plumbing -------------------------------------------------------------------------


def _ext() -> TachesExtension:
    return app_state().service


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
        response.vary.update(("Accept", "X-Requested-With"))
        abort(response)
    abort(code, description=message)


def _errors(view: F) -> F:
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
        except InvalidTransition as exc:
            fail(409, str(exc))

    return wrapper  # type: ignore[return-value]


def visible_or_404(tache_id: int) -> Tache:
    """The task if it exists and the current user may see it; else a 404."""
    tache: Tache | None = None
    if 0 < tache_id <= MAX_ID:
        tache = _ext().get(tache_id)
    if tache is None or not auth.can(tache, "view"):
        # The same answer for "no such task" and "not yours": ids cannot be probed.
        raise TacheNotFound(f"no task {tache_id} here")
    return tache


def status_data(tache: Tache) -> dict[str, Any]:
    """``to_dict()`` (never ``parametres_caches``) plus ``finished`` and ``label``."""
    data = tache.to_dict()
    data["finished"] = Status(tache.status).is_finished
    data["label"] = i18n.status_label(tache.status)
    return data


def live_data(tache: Tache) -> dict[str, Any]:
    """One task as the batch route gives it: :func:`status_data` and both fragments.

    Without ``logs``: a page polls this every few seconds for every task it
    shows, and a long task's log would travel each time; ``result_html``
    carries the logs summary and ``/<id>/status.json`` the full log.
    """
    data = status_data(tache)
    del data["logs"]
    data["status_html"] = str(render_status(tache))
    data["result_html"] = str(render_result(tache))
    return data


def _no_store(response: Response, negotiated: bool = False) -> Response:
    """Live data: never cached; vary on what chose between HTML and JSON."""
    response.headers["Cache-Control"] = "no-store"
    if negotiated:
        response.vary.update(("Accept", "X-Requested-With"))
    return response


def _html(markup: str) -> Response:
    return Response(markup, mimetype="text/html")


# -- one task: fragment and JSON ------------------------------------------------------


@blueprint.get("/<int:tache_id>/status")
@_errors
def status(tache_id: int) -> Response:
    """The status fragment, or the task as JSON when the client asks for JSON."""
    tache = visible_or_404(tache_id)
    if wants_json():
        return _no_store(jsonify(status_data(tache)), negotiated=True)
    return _no_store(_html(render_status(tache)), negotiated=True)


@blueprint.get("/<int:tache_id>/status.json")
@_errors
def status_json(tache_id: int) -> Response:
    return _no_store(jsonify(status_data(visible_or_404(tache_id))))


# -- batch for status.js --------------------------------------------------------------


@blueprint.route("/status", methods=["GET", "POST"])
@_errors
def batch_status() -> Response:
    """Many tasks at once, by id and by signature (the latest task of each).

    POST is a read too (for long lists): it needs no CSRF token.
    """
    ids, signatures = _batch_input()
    limit = int(current_app.config["TACHES_BATCH_MAX"])
    if len(ids) + len(signatures) > limit:
        raise BadInput(
            f"{len(ids)} ids + {len(signatures)} signatures: at most {limit} "
            "(TACHES_BATCH_MAX) in one request"
        )
    found, missing_ids, missing_signatures = find_batch(ids, signatures)
    payload = {
        "taches": [live_data(t) for t in found],
        "missing": {"ids": missing_ids, "signatures": missing_signatures},
    }
    return _no_store(jsonify(payload))


def _batch_input() -> tuple[list[int], list[str]]:
    if request.method == "POST" and request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadInput('the JSON body must be an object: {"ids": [...], "signatures": [...]}')
        raw_ids = _as_list(body.get("ids"), "ids")
        raw_signatures = _as_list(body.get("signatures"), "signatures")
    else:
        source = request.form if request.method == "POST" else request.args
        raw_ids = _split(source.getlist("ids"))
        raw_signatures = _split(source.getlist("signatures"))
    return [_parse_id(v) for v in raw_ids], [_parse_signature(v) for v in raw_signatures]


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInput(f"{name} must be a list")
    return value


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _parse_id(value: Any) -> int:
    if isinstance(value, bool):
        raise BadInput(f"id {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise BadInput(f"id {str(value)[:40]!r} is not an integer")


def _parse_signature(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"signature {str(value)[:40]!r} is not a string")
    return value


def find_batch(
    ids: Sequence[int], signatures: Sequence[str]
) -> tuple[list[Tache], list[int], list[str]]:
    """Tasks by id and latest task by signature, in two queries whatever the count.

    Returns the visible tasks (ids first, in the order asked, each once), and
    the ids and signatures that found nothing the user may see.
    """
    ids = list(dict.fromkeys(ids))
    signatures = list(dict.fromkeys(signatures))
    db = _ext().db()
    latest = _ext().store().latest_ids(db.session.connection(), signatures) if signatures else {}
    wanted = {i for i in ids if 0 < i <= MAX_ID} | set(latest.values())
    rows: dict[int, Tache] = {}
    if wanted:
        query = select(Tache).where(Tache.id.in_(sorted(wanted))).options(_no_secrets())
        rows = {t.id: t for t in db.session.scalars(query) if auth.can(t, "view")}
    order = [*ids, *(latest[s] for s in signatures if s in latest)]
    found = [rows[i] for i in dict.fromkeys(order) if i in rows]
    missing_ids = [i for i in ids if i not in rows]
    missing_signatures = [s for s in signatures if latest.get(s) not in rows]
    return found, missing_ids, missing_signatures


def _no_secrets() -> Any:
    """Never even load ``parametres_caches`` for a page; touching it raises."""
    return defer(Tache.parametres_caches, raiseload=True)


# -- actions -------------------------------------------------------------------------


def _action(tache_id: int, action: str) -> Any:
    csrf.check()
    tache = visible_or_404(tache_id)
    if not auth.can(tache, action):
        fail(403, f"you may not {action} task {tache_id}")
    ext = _ext()
    before = live_data(tache) if action == "delete" else None
    if action == "cancel":
        if ext.cancel(tache, who=auth.current_owner() or "web") is None:
            raise InvalidTransition(f"task {tache_id} is {tache.status}: nothing to cancel")
    elif action == "restart":
        ext.restart(tache)
    else:
        ext.delete(tache)
    if wants_json():
        if before is not None:
            data = {**before, "deleted": True, "status_html": "", "result_html": ""}
        else:
            data = live_data(visible_or_404(tache_id))
        return _no_store(jsonify(tache=data))
    return redirect(_back(tache_id, deleted=action == "delete"), code=303)


def _back(tache_id: int, *, deleted: bool) -> str:
    """Where a plain form post returns: the page it came from, if it is ours."""
    page = url_for("taches.tache", tache_id=tache_id)
    referrer = _same_site_referrer()
    if referrer and not (deleted and urlsplit(referrer).path == page):
        return referrer
    return url_for("taches.index") if deleted else page


def _action_view(action: str) -> Callable[[int], Any]:
    def view(tache_id: int) -> Any:
        return _action(tache_id, action)

    view.__name__ = action
    view.__doc__ = f"POST: {action} one task (CSRF token required)."
    return _errors(view)


for _name in ("cancel", "restart", "delete"):
    blueprint.add_url_rule(
        f"/<int:tache_id>/{_name}", endpoint=_name, view_func=_action_view(_name), methods=["POST"]
    )


@blueprint.post("/cancel-all")
@_errors
def cancel_all() -> Any:
    """Cancel every WAITING and TO_RUN task and stop every RUNNING one the user may."""
    csrf.check()
    ext = _ext()
    who = auth.current_owner() or "web"
    query = (
        select(Tache)
        .where(Tache.status.in_([s.value for s in UNFINISHED]))
        .order_by(Tache.id)
        .options(_no_secrets(), defer(Tache.logs), defer(Tache.result))
    )
    candidates = _visible_rows(query)
    ids = [t.id for t in candidates if t.cancel_requested_at is None and auth.can(t, "cancel")]
    done = [i for i in ids if _cancel_quietly(ext, i, who)]
    if wants_json():
        return _no_store(jsonify(cancelled=done))
    return redirect(_same_site_referrer() or url_for("taches.index"), code=303)


def _cancel_quietly(ext: Any, tache_id: int, who: str) -> bool:
    """Cancel one task of a bulk; one that finished or vanished meanwhile is skipped."""
    try:
        return ext.cancel(tache_id, who=who) is not None
    except TacheNotFound:
        return False


def _same_site_referrer() -> str | None:
    """The Referer, if it is an absolute URL of this very site (as browsers send it).

    A relative or scheme-only one is refused: browsers read a backslash as a
    slash, so ``/\\evil.example`` or ``https:/\\evil.example`` would leave the site.
    """
    referrer = request.referrer
    if not referrer or "\\" in referrer:
        return None
    parts = urlsplit(referrer)
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        return referrer
    return None


# -- file ----------------------------------------------------------------------------


@blueprint.get("/<int:tache_id>/fichier")
@_errors
def fichier(tache_id: int) -> Response:
    """The task's attached file, as a download."""
    tache = visible_or_404(tache_id)
    if not auth.can(tache, "fichier"):
        fail(403, f"you may not download the file of task {tache_id}")
    path = _ext().fichier_path(tache)
    if path is None or not path.is_file():
        raise TacheNotFound(f"task {tache_id} has no file")
    return send_file(path, as_attachment=True, download_name=tache.fichier)


# -- pages ---------------------------------------------------------------------------


@blueprint.get("/<int:tache_id>")
@_errors
def tache(tache_id: int) -> Any:
    """One task's page (or its JSON, for a client that asks for JSON)."""
    rescue_stale()
    item = visible_or_404(tache_id)
    if wants_json():
        return _no_store(jsonify(status_data(item)), negotiated=True)
    db = _ext().db()
    previous_id = db.session.scalar(select(Tache.id).where(Tache.next_id == item.id).limit(1))
    html = render_template("taches/tache.html", tache=item, previous_id=previous_id)
    return _no_store(_html(html), negotiated=True)


@dataclass
class Filters:
    """The dashboard's filters, from the query string."""

    statuses: list[str] = field(default_factory=list)
    text: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        statuses = [s.strip().upper() for s in _split(args.getlist("status"))]
        known = [s.value for s in Status]
        for value in statuses:
            if value not in known:
                raise BadInput(f"unknown status {value[:40]!r}; use one of {', '.join(known)}")
        text = {name: (args.get(name) or "").strip() or None for name in TEXT_FILTERS}
        return cls(statuses=list(dict.fromkeys(statuses)), text=text)

    def query_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {k: v for k, v in self.text.items() if v}
        if self.statuses:
            args["status"] = self.statuses
        return args

    def conditions(self) -> list[Any]:
        """The conditions every range shares (statuses are split, see ``status_conditions``)."""
        conditions: list[Any] = []
        for name in ("method", "signature", "queue"):
            value = self.text.get(name)
            if value:
                conditions.append(getattr(Tache, name) == value)
        return conditions

    def status_conditions(self) -> list[list[Any]]:
        """One range per status asked, each walked on ``(status, id)`` in order."""
        if not self.statuses:
            return [[]]
        return [[Tache.status == status] for status in self.statuses]


@dataclass
class Page:
    taches: list[Tache]
    newest_url: str
    newer_url: str | None
    older_url: str | None


@blueprint.get("/")
@_errors
def index() -> Any:
    """The dashboard: filtered tasks, newest first, by pages of ``PAGE_SIZE``."""
    filters = Filters.from_args(request.args)
    rescue_stale()
    before = _keyset_arg("before")
    after = _keyset_arg("after") if before is None else None
    page = dashboard_page(filters, before=before, after=after)
    html = render_template("taches/index.html", page=page, filters=filters, statuses=list(Status))
    return _no_store(_html(html))


def _keyset_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not _INTEGER.fullmatch(raw) or raw.startswith("-"):
        raise BadInput(f"{name}={raw[:40]!r} is not a task id")
    return min(int(raw), MAX_ID)


def dashboard_page(filters: Filters, *, before: int | None, after: int | None) -> Page:
    """One page by keyset (``id`` below ``before`` or above ``after``): no OFFSET, no COUNT.

    Each status asked and each owner the user may see is read as its own range
    of at most ``PAGE_SIZE + 1`` rows on an index ending in ``id`` (``status,
    id`` or ``owner, id``), and the ranges are merged here: an ``IN`` or an
    ``OR`` would make the databases sort every matching row instead.
    """
    conditions = filters.conditions()
    ascending = after is not None
    if before is not None:
        conditions.append(Tache.id < before)
    if after is not None:
        conditions.append(Tache.id > after)
    rows: dict[int, Tache] = {}
    session = _ext().db().session
    for owner_condition in _owner_conditions(filters.text.get("owner")):
        for status_condition in filters.status_conditions():
            query = _page_query([*conditions, *owner_condition, *status_condition], ascending)
            rows.update((t.id, t) for t in session.scalars(query))
    ordered = sorted(rows, reverse=not ascending)[: PAGE_SIZE + 1]
    more = len(ordered) > PAGE_SIZE
    ordered = ordered[:PAGE_SIZE]
    if ascending:
        ordered.reverse()
    taches = [rows[i] for i in ordered if auth.can(rows[i], "view")]
    args = filters.query_args()
    newest = url_for("taches.index", **args)
    newer = older = None
    if ordered:
        has_newer = more if ascending else before is not None
        has_older = True if ascending else more
        if has_newer:
            newer = url_for("taches.index", after=ordered[0], **args)
        if has_older:
            older = url_for("taches.index", before=ordered[-1], **args)
    elif before is not None or after is not None:
        newer = newest  # an empty page past either end: offer the way back
    return Page(taches=taches, newest_url=newest, newer_url=newer, older_url=older)


def _owner_conditions(wanted: str | None) -> list[list[Any]]:
    """One list of conditions per index range to read (none: the user sees nothing)."""
    visible = auth.visible_owners()
    if visible is None:  # admin, or a custom rule that can() applies row by row
        return [[Tache.owner == wanted]] if wanted else [[]]
    owners = [o for o in visible if wanted is None or o == wanted]
    return [[Tache.owner.is_(None)] if o is None else [Tache.owner == o] for o in owners]


def _page_query(conditions: Sequence[Any], ascending: bool) -> Select[Tache]:
    order = Tache.id.asc() if ascending else Tache.id.desc()
    return (
        select(Tache)
        .where(*conditions)
        .order_by(order)
        .limit(PAGE_SIZE + 1)
        .options(_no_secrets(), defer(Tache.logs), defer(Tache.result))
    )


def _visible_rows(query: Select[Tache]) -> list[Tache]:
    """Rows of ``query`` the default rule lets the user see (``can`` still decides)."""
    visible = auth.visible_owners()
    if visible is not None:
        named = [o for o in visible if o is not None]
        condition = Tache.owner.in_(named) if named else None
        shared = Tache.owner.is_(None)
        query = query.where(shared if condition is None else (condition | shared))
    return [t for t in _ext().db().session.scalars(query) if auth.can(t, "view")]


def rescue_stale() -> None:
    """INTERRUPT RUNNING tasks whose heartbeat stopped, before a page shows them.

    The managers do it every round; a page does it too (at most once per
    ``TACHES_HEARTBEAT`` seconds per process) so that a task whose host died
    while no manager runs does not show RUNNING forever. A task of this very
    host whose process lives is left to its timeout, as a manager would.
    """
    state = app_state()
    now = time.monotonic()
    if now - state.last_page_rescue < float(current_app.config["TACHES_HEARTBEAT"]):
        return
    state.last_page_rescue = now
    timeout = float(current_app.config["TACHES_HEARTBEAT_TIMEOUT"])
    state.store.rescue(heartbeat_timeout=timeout, hostname=socket.gethostname(), is_alive=pid_alive)


@blueprint.before_app_request
def _exempt_batch_from_wtf() -> None:
    """The POST batch is a read: let Flask-WTF's ``CSRFProtect`` through (see :mod:`.csrf`)."""
    csrf.exempt_from_wtf(f"{__name__}.batch_status")


@blueprint.record_once
def _on_register(state: Any) -> None:
    with state.app.app_context():
        csrf.exempt_from_wtf(f"{__name__}.batch_status")
