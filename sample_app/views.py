"""The demo's pages: add tasks, watch them by id and by signature, switch user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from flask_taches import Status, Tache
from flask_taches.exceptions import InvalidTache
from flask_taches.models import utcnow
from flask_taches.web import csrf
from flask_taches.web.inputs import INTEGER
from flask_taches.web.redirects import same_site

from . import USERS, current_user, current_user_is_admin, db, taches

DEMO = "sample_app.services:DemoService.demo"
FAIL = "sample_app.services:DemoService.fail"
REPORT = "sample_app.services:ReportService.build"
#: What the buttons of the demo page add: name -> (method, label).
KINDS = {"demo": (DEMO, "demo"), "fail": (FAIL, "failing"), "report": (REPORT, "report")}
COUNTS = (1, 10, 100)  # the demo page's buttons, as the bundle's
LISTED = 100  # tasks the demo page shows
MAX_SECONDS = 600.0  # longest demo task a form may ask for
MAX_DELAY = 3600.0  # seconds: latest start a form may ask for
DEFAULT_SIGNATURE = "demo-report"

blueprint = Blueprint("demo", __name__)


@blueprint.before_request
def check_csrf() -> None:
    """The demo's own forms use the extension's CSRF token too."""
    if request.method == "POST":
        try:
            csrf.check()
        except csrf.CSRFError as exc:
            abort(400, str(exc))


@blueprint.app_context_processor
def demo_context() -> dict[str, Any]:
    return {
        "users": USERS,
        "user": current_user(),
        "is_admin": current_user_is_admin(),
    }


def visible_taches(limit: int) -> Sequence[Tache]:
    """The newest tasks the current user may see (all of them for an admin)."""
    query = select(Tache).order_by(Tache.id.desc()).limit(limit)
    if not current_user_is_admin():
        user = current_user()
        shared = Tache.owner.is_(None)
        query = query.where(or_(shared, Tache.owner == user) if user else shared)
    return db.session.scalars(query).all()


def number(name: str, default: float, maximum: float) -> float:
    """A non-negative number from the form, or a clear 400."""
    raw = request.form.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        abort(400, f"{name} must be a number of seconds, not {raw!r}")
    if not 0 <= value <= maximum:
        abort(400, f"{name} must be between 0 and {maximum:g} seconds")
    return value


@blueprint.get("/")
def index() -> str:
    return render_template("demo.html", taches=visible_taches(LISTED), counts=COUNTS, listed=LISTED)


@blueprint.post("/add")
def add() -> Response:
    """Add 1, 10 or 100 tasks of one kind, as the bundle's demo page does."""
    kind = request.form.get("kind", "demo")
    if kind not in KINDS:
        abort(400, f"unknown kind of task {kind!r}")
    try:
        count = int(request.form.get("count", "1"))
    except ValueError:
        abort(400, "count must be 1, 10 or 100")
    if count not in COUNTS:
        abort(400, "count must be 1, 10 or 100")
    seconds = number("seconds", 5.0, MAX_SECONDS)
    delay = number("delay", 0.0, MAX_DELAY)
    method, label = KINDS[kind]
    run_at = utcnow() + timedelta(seconds=delay)
    ids = taches.add_many(
        Tache(method=method, parametres={"seconds": seconds}, run_at=run_at) for _ in range(count)
    )
    span = f"#{ids[0]}" if count == 1 else f"#{ids[0]} to #{ids[-1]}"
    flash(f"Added {count} {label} task{'s' if count > 1 else ''} ({span}).")
    return redirect(url_for("demo.index"))


@blueprint.get("/monitor")
def monitor() -> str:
    """Tasks by id and by signature, each also behind a ``data-status`` filter."""
    ids, ignored = parse_ids(request.args.get("ids", ""))
    if "ids" not in request.args:
        ids = [tache.id for tache in visible_taches(5)]  # the first visit: the latest
    for text in ignored:
        flash(f"Ignored {text!r}: not a task id.")
    statuses = [s for s in request.args.getlist("status") if s in Status.__members__]
    if not statuses:
        statuses = [Status.TO_RUN.value, Status.RUNNING.value]
    return render_template(
        "monitor.html",
        ids=ids,
        signature=request.args.get("signature", "").strip() or DEFAULT_SIGNATURE,
        statuses=statuses,
        all_statuses=[s.value for s in Status],
    )


def parse_ids(text: str) -> tuple[list[int], list[str]]:
    ids: list[int] = []
    ignored: list[str] = []
    for part in text.replace(" ", ",").split(","):
        if INTEGER.fullmatch(part) and not part.startswith("-"):  # not "²", not 5000 digits
            ids.append(int(part))
        elif part:
            ignored.append(part)
    return ids, ignored


@blueprint.post("/signature")
def start_signed() -> Response:
    """Start a report under a signature; ``fetch`` gets JSON, a form a redirect."""
    signature = request.form.get("signature", "").strip()
    if not signature or len(signature) > 255:
        abort(400, "a signature of 1 to 255 characters is required")
    seconds = number("seconds", 3.0, MAX_SECONDS)
    try:
        tache_id = taches.add(REPORT, parametres={"seconds": seconds}, signature=signature)
    except InvalidTache as exc:  # e.g. a NUL, which PostgreSQL cannot store
        abort(400, str(exc))
    if request.headers.get("X-Requested-With") == "fetch":
        return jsonify({"id": tache_id, "signature": signature})
    flash(f"Started report #{tache_id} with signature {signature!r}.")
    return redirect(url_for("demo.monitor", signature=signature))


@blueprint.post("/login")
def login() -> Response:
    """The user switch: no password, it only shows who owns which task."""
    user = request.form.get("user", "")
    if user and user not in USERS:
        abort(400, f"unknown user {user!r}")
    if user:
        session["user"] = user
    else:
        session.pop("user", None)
    # Only back to a page of this site, by the extension's one same-site check.
    return redirect(same_site(request.form.get("next")) or url_for("demo.index"))
