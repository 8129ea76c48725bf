"""Is a task's ``parametres`` a JSON object the task will see unchanged?

``add()`` checks every new row, so the common case (plain dicts of plain
values) takes a quick walk; anything else takes the full check, a JSON round
trip compared with the original.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..exceptions import ParametresNotJSON

#: Deepest nesting the quick JSON check walks; deeper data takes the full check.
JSON_QUICK_DEPTH = 64  # levels


def json_object(name: str, value: Any) -> dict[str, Any]:
    """``value`` (``{}`` for None) once checked; :class:`ParametresNotJSON` otherwise.

    Plain dicts, lists, str, int, bool, None and finite floats are accepted by
    the quick walk; a tuple, a subclass, a non-str key... take the round trip.
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
