"""Is a task's ``parametres`` a JSON object the task will see unchanged, on every database?

``add()`` checks every new row, so the common case (plain dicts of plain
values) takes a quick walk; anything else takes the full check, a JSON round
trip compared with the original, then the walk again on what came back, which
says what is wrong in one line.

Held to the strictest database, like :mod:`.validation`: MariaDB's JSON
check refuses nesting past 31 levels, PostgreSQL's JSONB a NUL or a lone
surrogate in any string (keys included), and no database takes what
``json.dumps`` cannot write (100,000 levels raise ``RecursionError``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..exceptions import ParametresNotJSON
from .validation import UNSTORABLE

#: Deepest nesting stored (the object itself is level 1): MariaDB's JSON_VALID says 0 at 32.
JSON_MAX_DEPTH = 31  # levels
#: Deepest nesting the quick walk takes; deeper data takes the full check (and is refused).
JSON_QUICK_DEPTH = JSON_MAX_DEPTH


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
        same = json.loads(text) == value
    except (TypeError, ValueError) as exc:
        raise ParametresNotJSON(f"{name} is not JSON: {exc}") from exc
    except RecursionError:
        raise ParametresNotJSON(f"{name} is nested deeper than {JSON_MAX_DEPTH} levels") from None
    if not same:
        # e.g. int keys become strings, tuples become lists: the task would see other data
        raise ParametresNotJSON(f"{name} does not survive a JSON round trip (keys must be str)")
    problem = _unstorable(json.loads(text), JSON_MAX_DEPTH - 1)
    if problem:
        raise ParametresNotJSON(f"{name} {problem}")
    return value


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is made only of types JSON gives back as they are, storable.

    ``depth`` is how many levels of containers may still open below this one.
    """
    kind = type(value)
    if kind is str:
        return UNSTORABLE.search(value) is None
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth <= 0:
        return False  # too deep, or a cycle: the full check says so properly
    if kind is dict:
        return all(
            type(k) is str and UNSTORABLE.search(k) is None and _plain(v, depth - 1)
            for k, v in value.items()
        )
    if kind is list:
        return all(_plain(v, depth - 1) for v in value)
    return False


def _unstorable(value: Any, depth: int) -> str | None:
    """What no database stores in ``value`` (plain JSON data), in words; ``None`` if nothing."""
    if isinstance(value, str):
        found = UNSTORABLE.search(value)
        return None if found is None else f"holds the character {found.group()!r}"
    if not isinstance(value, dict | list):
        return None
    if depth < 0:
        return f"is nested deeper than {JSON_MAX_DEPTH} levels"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        problem = (_unstorable(key, depth) if isinstance(key, str) else None) or _unstorable(
            item, depth - 1
        )
        if problem:
            return problem
    return None
