"""A second look, in a fresh import, for a method the warm modules do not have.

A forked task process inherits the modules its manager imported, as they were
when it imported them. After a deploy, a ``--forever`` manager started before it
holds the old ``shop.services``: a task for a function or class the deploy added
would fail with "'Newsletter' not found in <module 'shop.services'>" although
the file has it. So before a method is declared missing, the modules its path
names are imported again from their files (in this task's process only; the
manager keeps its copy until it is re-executed, ``SIGHUP``), and the walk is
tried once more.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ..exceptions import MethodNotFound
from ..methods import Target, locate, parse


@dataclass(frozen=True)
class Found:
    """The target, and the module re-imported to find it (``None``: found at once)."""

    target: Target
    reimported: str | None = None

    @property
    def notice(self) -> str | None:
        """What the task's log says when a fresh import found it."""
        if self.reimported is None:
            return None
        return (
            f"found after importing {self.reimported} afresh: the manager's copy predates "
            "it (send the manager SIGHUP after a deploy)"
        )


def locate_fresh(method: str, allowed: Iterable[str] | None = None) -> Found:
    """:func:`~flask_taches.methods.locate`, once more after a fresh import when the
    method was not found; raises the second look's :class:`MethodNotFound`."""
    allowed = None if allowed is None else list(allowed)
    try:
        return Found(locate(method, allowed))
    except MethodNotFound:
        module = _reimport(method)
    return Found(locate(method, allowed), module)


def _reimport(method: str) -> str | None:
    """Import again the deepest module of ``method``'s path already imported here
    (its name); a module never imported is looked for afresh on disk either way."""
    importlib.invalidate_caches()  # a module file the deploy added, in a cached folder
    path = parse(method)
    names = path.module.split(".")
    if ":" not in method:  # "a.b.C.m": the module ends somewhere in the dotted path
        names = [*names, *path.attrs]
    for cut in range(len(names), 0, -1):
        name = ".".join(names[:cut])
        module = sys.modules.get(name)
        if module is not None:
            # A module the deploy broke raises here: that error is the task's to report.
            importlib.reload(module)
            return name
    return None
