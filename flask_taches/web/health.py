"""``GET <prefix>/health``: for load balancers, a minimal JSON that reveals no task.

200 ``{"status": "ok", "managers": N}`` when the database answers (``N``
live managers: a web process serves pages without any); 503
``{"status": "unavailable"}`` when it does not. Anyone may ask: a balancer
does not log in.
"""

from __future__ import annotations

import logging

from flask import Response, jsonify
from sqlalchemy.exc import SQLAlchemyError

from ..service import health as service_health
from .answers import no_store
from .blueprint import blueprint

logger = logging.getLogger(__name__)


@blueprint.get("/health")
def health() -> Response:
    try:
        figures = service_health.health()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        logger.warning("health check: the database does not answer: %s", reason)
        response = jsonify(status="unavailable")
        response.status_code = 503
        return no_store(response)
    return no_store(jsonify(figures))
