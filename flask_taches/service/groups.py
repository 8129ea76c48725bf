"""A group: tasks that run in parallel, and one that runs once all have completed.

``taches.group(t1, t2, ..., then=t)`` inserts the members TO_RUN and the
callback ``t`` WAITING, in one transaction: each member's ``next_id`` points
at the callback, whose ``waits_for`` counts the members not completed yet.
When the last member completes, the callback is released with the members'
results as its parameter ``previous`` (a list, in the group's order); when a
member ends otherwise (FAILED, INTERRUPTED after its retries, CANCELLED,
deleted), the callback is cancelled with a log saying which. The store
decides it, race-free (:mod:`flask_taches.store.chains`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from ..exceptions import InvalidTache
from ..models import Tache
from ..state import app_state
from ..status import Status
from .adding import prepare_all, save


def add_group(members: Sequence[Tache | str], then: Tache | str, *, commit: bool) -> list[int]:
    """Insert the group; the members' ids, then the callback's."""
    if not members:
        raise InvalidTache("a group needs at least one task before then=")
    state = app_state()
    rows = prepare_all(state, [*members, then], previous_from=len(members))
    callback = rows[-1]
    if callback.values["status"] != Status.TO_RUN.value:
        raise InvalidTache("then= is a new task; it waits for the group (WAITING) by itself")
    for row in rows[:-1]:
        if row.values["status"] != Status.TO_RUN.value:
            raise InvalidTache("the tasks of a group are new TO_RUN tasks")
    callback.values["status"] = Status.WAITING.value

    def link(conn: Connection, ids: list[int]) -> None:
        state.store.link_group(conn, ids[:-1], ids[-1])
        callback.values["waits_for"] = len(ids) - 1

    return save(state, rows, commit=commit, link=link)
