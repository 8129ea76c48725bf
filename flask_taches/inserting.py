"""New rows for ``add()``: column values checked as JSON, and the caller's objects adopted.

``add()`` does not go through the ORM's unit of work (one ``Tache`` object, a
flush, an identity map entry per row cost more than the INSERT itself): a new
task is a plain dict of column values, inserted by the store on the
session's connection. A :class:`Tache` the caller handed in gets its values
and id back and joins the session as a persistent object, as after a flush.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value

from .exceptions import ParametresNotJSON
from .models import Tache, taches_table

#: Deepest nesting the quick JSON check walks; deeper data takes the full check.
JSON_QUICK_DEPTH = 64  # levels
_NULL_ROW: dict[str, Any] = dict.fromkeys(taches_table.c.keys())


@dataclass
class NewRow:
    """A task about to be inserted: its column values, and the caller's object if any."""

    values: dict[str, Any]
    tache: Tache | None = None


def json_object(name: str, value: Any) -> dict[str, Any]:
    """Check that ``value`` is a JSON object the task will see unchanged.

    Plain dicts, lists, str, int, bool, None and finite floats are accepted by
    a quick walk; anything else (a tuple, a subclass, a non-str key...) takes
    the full check, a JSON round trip compared with the original.
    """
    if value is None:
        return {}
    if type(value) is dict and (not value or _plain(value, JSON_QUICK_DEPTH)):
        return value
    if not isinstance(value, dict):
        raise ParametresNotJSON(f"{name} must be a dict, not {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParametresNotJSON(f"{name} is not JSON: {exc}") from exc
    if json.loads(text) != value:
        # e.g. int keys become strings, tuples become lists: the task would see other data
        raise ParametresNotJSON(f"{name} does not survive a JSON round trip (keys must be str)")
    return value


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is made only of types JSON gives back as they are."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth <= 0:
        return False  # maybe a cycle: the full check says so properly
    if kind is dict:
        return all(type(k) is str and _plain(v, depth - 1) for k, v in value.items())
    if kind is list:
        return all(_plain(v, depth - 1) for v in value)
    return False


def adopt(session: Session, rows: Sequence[NewRow], ids: Sequence[int]) -> list[Tache]:
    """Give each caller's :class:`Tache` its stored values and id, persistent in ``session``.

    As after an ORM flush: the object is in the identity map (``taches.get(id)``
    is that object) and, once committed, expired like any other.
    """
    adopted = []
    for row, tache_id in zip(rows, ids, strict=True):
        tache = row.tache
        if tache is None:
            continue
        # The whole row, as a load would give it (NULL where nothing was set);
        # make_transient_to_detached() then takes it as the committed state,
        # with no history and nothing left expired to load again.
        loaded = instance_dict(tache)
        loaded.update(_NULL_ROW)
        loaded.update(row.values)
        loaded["id"] = tache_id
        make_transient_to_detached(tache)
        session.add(tache)
        adopted.append(tache)
    return adopted


def disown(session: Session, taches: Sequence[Tache]) -> None:
    """Undo :func:`adopt` when the insert is rolled back: the objects are new again."""
    for tache in taches:
        if tache in session:
            session.expunge(tache)
        make_transient(tache)
        set_committed_value(tache, "id", None)
