"""Reading rows for a page: never the secrets, only what the user may see.

Pages read rows through ``db.session`` (their own filters and keysets); what a
row's status may become is the service's business.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import defer

from .. import auth
from ..models import Tache
from ..state import app_state


def no_secrets() -> Any:
    """Never even load ``parametres_caches`` for a page; touching it raises."""
    return defer(Tache.parametres_caches, raiseload=True)


def summary_only() -> tuple[Any, ...]:
    """Options of a listing: no secrets, and neither ``logs`` nor ``result``."""
    return no_secrets(), defer(Tache.logs), defer(Tache.result)


def visible_rows(query: Select[Tache]) -> list[Tache]:
    """Rows of ``query`` the default rule lets the user see (``can`` still decides)."""
    visible = auth.visible_owners()
    if visible is not None:
        named = [o for o in visible if o is not None]
        condition = Tache.owner.in_(named) if named else None
        shared = Tache.owner.is_(None)
        query = query.where(shared if condition is None else (condition | shared))
    return [t for t in app_state().db.session.scalars(query) if auth.can(t, "view")]
