"""The ``taches`` blueprint object, which every route module of :mod:`flask_taches.web` fills.

Its ``templates/`` and ``static/`` folders stay at the package's root
(``flask_taches/templates``, ``flask_taches/static``): the packaging lists them
there, and applications override ``taches/*.html`` by those paths.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint

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
