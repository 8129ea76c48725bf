"""What the dashboard reads: its filters, and one page of tasks by keyset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import url_for
from sqlalchemy import Select, select

from .. import auth
from ..models import Tache
from ..state import app_state
from ..status import Status
from .answers import BadInput
from .inputs import split_commas
from .rows import summary_only

PAGE_SIZE = 50  # tasks per dashboard page
TEXT_FILTERS = ("method", "signature", "owner", "queue")


@dataclass
class Filters:
    """The dashboard's filters, from the query string."""

    statuses: list[str] = field(default_factory=list)
    text: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        statuses = [s.strip().upper() for s in split_commas(args.getlist("status"))]
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


def dashboard_page(filters: Filters, *, before: int | None, after: int | None) -> Page:
    """One page by keyset (``id`` below ``before`` or above ``after``): no OFFSET, no COUNT.

    Each status asked and each owner the user may see is read as its own range
    of at most ``PAGE_SIZE + 1`` rows on an index ending in ``id`` (``status,
    id`` or ``owner, id``), and the ranges are merged here: an ``IN`` or an
    ``OR`` would make the databases sort every matching row instead.
    """
    ascending = after is not None
    rows = _read_ranges(filters, before=before, after=after)
    ordered = sorted(rows, reverse=not ascending)[: PAGE_SIZE + 1]
    more = len(ordered) > PAGE_SIZE
    ordered = ordered[:PAGE_SIZE]
    if ascending:
        ordered.reverse()
    taches = [rows[i] for i in ordered if auth.can(rows[i], "view")]
    return _with_links(taches, ordered, filters, before=before, after=after, more=more)


def _read_ranges(filters: Filters, *, before: int | None, after: int | None) -> dict[int, Tache]:
    """Every range of the page, by id (each at most ``PAGE_SIZE + 1`` rows)."""
    conditions = filters.conditions()
    if before is not None:
        conditions.append(Tache.id < before)
    if after is not None:
        conditions.append(Tache.id > after)
    rows: dict[int, Tache] = {}
    session = app_state().db.session
    for owner_condition in _owner_conditions(filters.text.get("owner")):
        for status_condition in filters.status_conditions():
            query = _page_query(
                [*conditions, *owner_condition, *status_condition], after is not None
            )
            rows.update((t.id, t) for t in session.scalars(query))
    return rows


def _with_links(
    taches: list[Tache],
    ordered: list[int],
    filters: Filters,
    *,
    before: int | None,
    after: int | None,
    more: bool,
) -> Page:
    """The page and its pager: newest, newer (``after=``) and older (``before=``)."""
    ascending = after is not None
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
        .options(*summary_only())
    )
