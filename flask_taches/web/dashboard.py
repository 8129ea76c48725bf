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
#: Reads of each range, at most, while looking for a page of rows an ``authorize`` hook shows.
MAX_READS = 20
TEXT_FILTERS = ("method", "signature", "owner", "queue")
#: The filters that match the start of the value (the others match exactly).
PREFIX_FILTERS = ("method", "signature")


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

    def conditions(self, *, queue: bool = True) -> list[Any]:
        """The conditions every range shares (statuses are split, see ``status_conditions``).

        Method and signature match by prefix (``LIKE 'x%'``, with ``%`` and ``_``
        taken literally); the queue exactly. The owner is read by ranges of its
        own (:func:`_owner_conditions`); :meth:`all_but_status` has it too.
        """
        conditions: list[Any] = []
        for name in PREFIX_FILTERS:
            value = self.text.get(name)
            if value:
                conditions.append(getattr(Tache, name).startswith(value, autoescape=True))
        if queue:
            conditions.extend(self.queue_condition())
        return conditions

    def queue_condition(self) -> list[Any]:
        value = self.text.get("queue")
        return [Tache.queue == value] if value else []

    def owner_condition(self) -> list[Any]:
        value = self.text.get("owner")
        return [auth.owner_is(value)] if value else []

    def status_condition(self) -> list[Any]:
        return [Tache.status.in_(self.statuses)] if self.statuses else []

    def all_but_status(self) -> list[Any]:
        """Every condition but the statuses (a bulk action intersects them with its own)."""
        return [*self.conditions(), *self.owner_condition()]

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


@dataclass
class _Range:
    """One index range of the page, read ``PAGE_SIZE + 1`` rows at a time."""

    conditions: list[Any]
    #: The last id read (the next read starts past it); None before the first.
    cursor: int | None = None
    exhausted: bool = False


def dashboard_page(filters: Filters, *, before: int | None, after: int | None) -> Page:
    """One page by keyset (``id`` below ``before`` or above ``after``): no OFFSET, no COUNT.

    Each status asked and each owner the user may see is read as its own range
    of at most ``PAGE_SIZE + 1`` rows on an index ending in ``id`` (``status,
    id`` or ``owner, id``), and the ranges are merged here: an ``IN`` or an
    ``OR`` would make the databases sort every matching row instead.

    The page, its "more" and its links come from the rows the user may see
    (:func:`_visible_walk`): a hidden id is never in a link.
    """
    ascending = after is not None
    visible, reached_end = _visible_walk(filters, before=before, after=after)
    more = len(visible) > PAGE_SIZE or (not reached_end and bool(visible))
    shown = visible[:PAGE_SIZE]
    if ascending:
        shown.reverse()
    return _with_links(shown, filters, before=before, after=after, more=more)


def _visible_walk(
    filters: Filters, *, before: int | None, after: int | None
) -> tuple[list[Tache], bool]:
    """Up to ``PAGE_SIZE + 1`` visible rows in walking order; and whether the walk ended.

    Under the default rule the SQL already keeps only visible rows, so one read
    of each range is enough. Under an ``authorize`` hook, which decides row by
    row, the ranges are read on (each from its own last id) until ``PAGE_SIZE +
    1`` visible rows are known in order, every range is exhausted, or each was
    read ``MAX_READS`` times: then the walk did not end, and the pager goes on
    from the last visible row.
    """
    ascending = after is not None
    shared = filters.conditions()
    if before is not None:
        shared.append(Tache.id < before)
    if after is not None:
        shared.append(Tache.id > after)
    ranges = [
        _Range([*shared, *owner, *status])
        for owner in _owner_conditions(filters.text.get("owner"))
        for status in filters.status_conditions()
    ]
    rows: dict[int, Tache] = {}
    allowed: dict[int, bool] = {}
    visible: list[int] = []
    for _ in range(MAX_READS):
        for open_range in (r for r in ranges if not r.exhausted):
            rows.update(_read_range(open_range, ascending))
        frontier = _frontier(ranges, ascending)
        known = sorted(
            (
                i
                for i in rows
                if frontier is None or (i <= frontier if ascending else i >= frontier)
            ),
            reverse=not ascending,
        )
        for i in known:
            if i not in allowed:
                allowed[i] = auth.can(rows[i], "view")
        visible = [i for i in known if allowed[i]]
        if len(visible) > PAGE_SIZE or frontier is None:
            return [rows[i] for i in visible[: PAGE_SIZE + 1]], frontier is None
    return [rows[i] for i in visible], False


def _read_range(open_range: _Range, ascending: bool) -> dict[int, Tache]:
    """The next ``PAGE_SIZE + 1`` rows of one range, past its cursor."""
    conditions = list(open_range.conditions)
    if open_range.cursor is not None:
        past = Tache.id > open_range.cursor if ascending else Tache.id < open_range.cursor
        conditions.append(past)
    read = list(app_state().db.session.scalars(_page_query(conditions, ascending)))
    if len(read) <= PAGE_SIZE:
        open_range.exhausted = True
    if read:
        open_range.cursor = read[-1].id
    return {t.id: t for t in read}


def _frontier(ranges: list[_Range], ascending: bool) -> int | None:
    """The id up to which every range has been read (None: all of them to their end).

    A range not exhausted may still hold rows past its cursor, never before it:
    the rows read are complete, in order, up to the nearest such cursor.
    """
    cursors = [r.cursor for r in ranges if not r.exhausted and r.cursor is not None]
    if not cursors:
        return None
    return min(cursors) if ascending else max(cursors)


def _with_links(
    taches: list[Tache],
    filters: Filters,
    *,
    before: int | None,
    after: int | None,
    more: bool,
) -> Page:
    """The page and its pager: newest, newer (``after=``) and older (``before=``).

    The links' ids are the page's own first and last rows: visible ones.
    """
    ascending = after is not None
    args = filters.query_args()
    newest = url_for("taches.index", **args)
    newer = older = None
    if taches:
        has_newer = more if ascending else before is not None
        has_older = True if ascending else more
        if has_newer:
            newer = url_for("taches.index", after=taches[0].id, **args)
        if has_older:
            older = url_for("taches.index", before=taches[-1].id, **args)
    elif before is not None or after is not None:
        newer = newest  # an empty page past either end: offer the way back
    return Page(taches=taches, newest_url=newest, newer_url=newer, older_url=older)


def _owner_conditions(wanted: str | None) -> list[list[Any]]:
    """One list of conditions per index range to read (none: the user sees nothing).

    Owners compare exactly on every database (MariaDB's collation would match
    ``'BOB'`` for ``'bob'``).
    """
    visible = auth.visible_owners()
    if visible is None:  # admin, or a custom rule that can() applies row by row
        return [[auth.owner_is(wanted)]] if wanted else [[]]
    owners = [o for o in visible if wanted is None or o == wanted]
    return [[auth.owner_is(o)] for o in owners]


def _page_query(conditions: Sequence[Any], ascending: bool) -> Select[Tache]:
    order = Tache.id.asc() if ascending else Tache.id.desc()
    return (
        select(Tache)
        .where(*conditions)
        .order_by(order)
        .limit(PAGE_SIZE + 1)
        .options(*summary_only())
    )
