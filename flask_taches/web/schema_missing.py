"""A page that finds the extension's tables missing says so in one line (503).

Any database error a view of the blueprint raises is looked at: when a table
is missing, the answer names it and how to create it; otherwise the error goes
on as before (a 500).
"""

from __future__ import annotations

from flask import Response
from sqlalchemy.exc import SQLAlchemyError

from ..migrations.check import missing_schema
from ..state import app_state
from .answers import no_store
from .blueprint import blueprint


@blueprint.errorhandler(SQLAlchemyError)
def schema_missing(error: SQLAlchemyError) -> Response:
    state = app_state()
    state.db.session.rollback()  # the failed statement's transaction, before asking
    missing = missing_schema(state.store.engine)
    if missing is None:
        raise error
    return no_store(Response(f"flask-taches: {missing}\n", status=503, mimetype="text/plain"))
