"""One task's live status (fragment or JSON), and the batch that ``status.js`` polls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, current_app, jsonify, request

from ..models import Tache
from ..state import app_state
from . import csrf, live
from .answers import (
    BadInput,
    http_errors,
    live_data,
    no_store,
    status_data,
    task_answer,
)
from .blueprint import blueprint
from .fragments import Fragments
from .inputs import as_list, parse_id, parse_signature, split_commas
from .rows import shown_or_404
from .templating import render_status


@blueprint.get("/<int:tache_id>/status")
@http_errors
def status(tache_id: int) -> Response:
    """The status fragment, or the task as JSON when the client asks for JSON."""
    return task_answer(shown_or_404(tache_id), render_status)


@blueprint.get("/<int:tache_id>/status.json")
@http_errors
def status_json(tache_id: int) -> Response:
    return no_store(jsonify(status_data(shown_or_404(tache_id))))


@blueprint.route("/status", methods=["GET", "POST"])
@http_errors
def batch_status() -> Response:
    """Many tasks at once, by id and by signature (the latest task of each).

    A JSON body may also ask for a task page's parts, dashboard rows and the
    dashboard's new rows (:mod:`.live`). POST is a read too (for long lists):
    it needs no CSRF token.
    """
    ids, signatures = batch_input()
    limit = int(current_app.config["TACHES_BATCH_MAX"])
    if len(ids) + len(signatures) > limit:
        raise BadInput(
            f"{len(ids)} ids + {len(signatures)} signatures: at most {limit} "
            "(TACHES_BATCH_MAX) in one request"
        )
    body = _json_body()
    pages = live.parse_pages(body.get("pages"))
    rows = set(live.parse_rows(body.get("rows")))
    found, missing_ids, missing_signatures = find_batch([*ids, *pages, *rows], signatures)
    fragments = Fragments()
    payload: dict[str, Any] = {
        "taches": [_with_row(live_data(t, fragments), t, rows, fragments) for t in found],
        "missing": {"ids": missing_ids, "signatures": missing_signatures},
    }
    if pages:
        shown = {t.id: t for t in found}
        payload["pages"] = {
            str(i): live.page_parts(shown[i], n) for i, n in pages.items() if i in shown
        }
    if body.get("newer") is not None:
        payload["newer"] = live.newer_rows(body["newer"])
    return no_store(jsonify(payload))


def _json_body() -> dict[str, Any]:
    """The JSON object of a POST (batch_input already refused any other JSON); else empty."""
    if request.method == "POST" and request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            return body
    return {}


def _with_row(
    data: dict[str, Any], tache: Tache, rows: set[int], fragments: Fragments
) -> dict[str, Any]:
    if tache.id in rows:
        data["row_html"] = live.row_html(tache, fragments)
    return data


def batch_input() -> tuple[list[int], list[str]]:
    """The ids and signatures asked: a JSON body, a form, or the query string."""
    if request.method == "POST" and request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadInput('the JSON body must be an object: {"ids": [...], "signatures": [...]}')
        raw_ids = as_list(body.get("ids"), "ids")
        raw_signatures = as_list(body.get("signatures"), "signatures")
    else:
        source = request.form if request.method == "POST" else request.args
        raw_ids = split_commas(source.getlist("ids"))
        raw_signatures = split_commas(source.getlist("signatures"))
    return [parse_id(v) for v in raw_ids], [parse_signature(v) for v in raw_signatures]


def find_batch(
    ids: Sequence[int], signatures: Sequence[str]
) -> tuple[list[Tache], list[int], list[str]]:
    """Tasks by id and latest visible task by signature, in two queries whatever the count.

    (A third only when the newest task of a signature is one the user may not see.)

    Returns the visible tasks (ids first, in the order asked, each once), and
    the ids and signatures that found nothing the user may see.
    """
    ids = list(dict.fromkeys(ids))
    signatures = list(dict.fromkeys(signatures))
    by_id, by_signature = app_state().service.visible_batch(ids, signatures)
    rows = {**{t.id: t for t in by_signature.values()}, **by_id}
    order = [
        *(i for i in ids if i in by_id),
        *(by_signature[s].id for s in signatures if s in by_signature),
    ]
    found = [rows[i] for i in dict.fromkeys(order)]
    missing_ids = [i for i in ids if i not in by_id]
    missing_signatures = [s for s in signatures if s not in by_signature]
    return found, missing_ids, missing_signatures


#: The POST batch is a read: Flask-WTF's ``CSRFProtect`` lets it through.
csrf.checks_its_own(batch_status)


@blueprint.before_app_request
def _exempt_from_wtf() -> None:
    """Flask-WTF set up after flask-taches exempts them too (see :mod:`.csrf`)."""
    csrf.exempt_own_checks()


@blueprint.record_once
def _on_register(setup: Any) -> None:
    with setup.app.app_context():
        csrf.exempt_own_checks()
