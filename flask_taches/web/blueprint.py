"""The ``taches`` blueprint object, which every route module of :mod:`flask_taches.web` fills.

Its ``templates/`` and ``static/`` folders stay at the package's root
(``flask_taches/templates``, ``flask_taches/static``): the packaging lists them
there, and applications override ``taches/*.html`` by those paths. What it
does to every request of its own is here too: the input no view may see
(:func:`.inputs.check_request`) and the headers of every answer
(:func:`.answers.protect`).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

from .answers import BadInput, fail, protect
from .inputs import check_request

#: ``flask_taches/``: the folder the blueprint's templates and static files are relative to.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

blueprint = Blueprint(
    "taches",
    __name__,
    root_path=str(PACKAGE_ROOT),
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@blueprint.before_request
def _refuse_bad_input() -> None:
    """A 400 in one line, before a view could turn the input into a 500."""
    try:
        check_request()
    except BadInput as exc:
        fail(400, str(exc))


@blueprint.after_request
def _protect(response: Response) -> Response:
    return protect(response)
