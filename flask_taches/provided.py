"""Typos caught early: a required parameter that nothing will provide.

A task's callable (and, for an instance method, its class's ``__init__``)
gets its arguments by name when it runs (:mod:`flask_taches.injection`).
A parameter without a default that is none of ``tache``/``app``/``db``/
``logger``, no registered service, and in neither ``parametres`` nor
``parametres_caches`` would fail every attempt; ``add()`` refuses it now, in
one line, instead of hours later, and so does the reading of a schedule
(its ``parametres`` are all a slot's task will get). A task after another in a chain or a group
gets ``previous`` when it is released, so ``previous`` counts as provided
there.

What a method requires depends on its code only, so it is remembered per
method string (a bulk add of one method reads its signature once).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

from .exceptions import InvalidTache
from .injection import BUILTIN_NAMES, required_names
from .methods import METHOD_CACHE_SIZE, locate

#: The parameter a chained or grouped task gets from the tasks before it.
PREVIOUS = "previous"

_required: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}


def check_provided(
    method: str,
    allowed: Sequence[str],
    services: Container[str],
    sources: Iterable[Mapping[str, Any] | None],
    *,
    previous: bool = False,
) -> None:
    """Raise :class:`InvalidTache` naming the first parameter nothing provides."""
    needed = required(method, allowed)
    if not needed:
        return  # the usual case in a bulk add: nothing is built per row
    given = [source for source in sources if source]
    for name in needed:
        if (
            name in BUILTIN_NAMES
            or name in services
            or (previous and name == PREVIOUS)
            or any(name in source for source in given)
        ):
            continue
        raise InvalidTache(
            f"{method}: nothing provides its parameter {name!r} (not tache, app, db or "
            "logger, no registered service, not in parametres, no default)"
        )


def required(method: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """The names running ``method`` requires (already checked against ``allowed``)."""
    key = (method, tuple(allowed))
    found = _required.get(key)
    if found is None:
        found = required_names(locate(method, key[1]))
        if len(_required) >= METHOD_CACHE_SIZE:
            _required.clear()  # a dynamic method per call must not grow memory
        _required[key] = found
    return found
