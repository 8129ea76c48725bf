"""Reading rows for a page: never the secrets, only what the user may see.

Pages read rows through ``db.session`` (their own filters and keysets); what a
row's status may become is the service's business. No row a page reads holds
``parametres_caches``: an overriding template that prints it gets an error,
never the value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value

from .. import auth
from ..exceptions import TacheNotFound
from ..models import Tache
from ..service.reading import no_secrets
from ..state import app_state
from .showing import WITH_REASON, logs_loaded

__all__ = ["no_secrets", "shown_or_404", "summary_only", "visible_rows", "with_reasons"]


def summary_only() -> tuple[Any, ...]:
    """Options of a listing: no secrets, and neither ``logs`` nor ``result``."""
    return no_secrets(), defer(Tache.logs), defer(Tache.result)


def shown_or_404(tache_id: int) -> Tache:
    """The task for a page (secrets not loaded) if the user may see it; else a 404.

    The same answer for "no such task" and "not yours": ids cannot be probed.
    """
    tache = app_state().service.get_visible(tache_id)
    if tache is None:
        raise TacheNotFound(f"no task {tache_id} here")
    return tache


def visible_rows(query: Select[Tache]) -> list[Tache]:
    """Rows of ``query`` the default rule lets the user see (``can`` still decides)."""
    condition = auth.visible_condition()
    if condition is not None:
        query = query.where(condition)
    return [t for t in app_state().db.session.scalars(query) if auth.can(t, "view")]


def with_reasons(taches: list[Tache]) -> list[Tache]:
    """Load the logs of the listed rows that show a reason (FAILED, INTERRUPTED), in one query.

    A listing defers ``logs`` (a long log would travel for every row); the few
    rows that say why they failed get theirs here rather than one query each.
    """
    wanted = {t.id: t for t in taches if t.status in WITH_REASON and not logs_loaded(t)}
    if wanted:
        query = select(Tache.id, Tache.logs).where(Tache.id.in_(sorted(wanted)))
        for tache_id, logs in app_state().db.session.execute(query):
            set_committed_value(wanted[tache_id], "logs", logs)
    return taches
