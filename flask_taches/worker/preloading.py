"""What a fork manager loads before forking, so that every child finds it ready.

Forked children share the manager's memory: a statement compiled, or a task's
module imported, once in the manager costs nothing in each child.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from ..exceptions import TacheError
from ..methods import check_allowed
from ..store import Store
from .log import logger


class Preloader:
    """Warms the store, and imports each task's module once (only what the allowlist admits)."""

    def __init__(self, store: Store, allowed_modules: Sequence[str]) -> None:
        self.store = store
        self.allowed_modules = list(allowed_modules)
        self._imported: set[str] = set()

    def warm_store(self) -> None:
        try:
            self.store.warm_up()
        except SQLAlchemyError as exc:  # a cold cache only costs time
            logger.warning(
                "could not warm the store up: %s", exc, extra={"action": "warm", "tache_id": None}
            )

    def import_module_of(self, method: str) -> None:
        """Import a task's module here once, so forked children find it loaded."""
        try:
            module = check_allowed(method, self.allowed_modules).module
        except TacheError:
            return  # refused: the runner records why, in the task's own process
        if module in self._imported or module in sys.modules:
            return
        self._imported.add(module)
        try:
            importlib.import_module(module)
        except Exception as exc:  # the task's process reports it with its traceback
            logger.debug(
                "could not preload %s: %s", module, exc, extra={"action": "warm", "tache_id": None}
            )
            return
        # Children then share the module's objects without the GC writing to them.
        gc.freeze()
