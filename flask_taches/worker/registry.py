"""A manager's own row in the managers registry (``flask taches managers``).

:class:`Registration` joins when the manager starts, beats on every
supervision pass (so at least every ``TACHES_HEARTBEAT`` seconds) with the
number of tasks it runs, prunes the rows of managers not seen for
``TACHES_HEARTBEAT_TIMEOUT`` (a ``kill -9`` leaves one behind), and leaves on
a clean exit.

The registry is for people and monitors, never for claiming: a database
error here is logged and tried again on the next pass, and the manager goes
on running tasks.
"""

from __future__ import annotations

import os

from sqlalchemy.exc import SQLAlchemyError

from ..store import Store
from ..store import managers as registry
from .log import logger
from .options import ManagerOptions


def _version() -> str:
    from .. import __version__  # the package's root imports everything: not at import time

    return __version__


class Registration:
    """One manager's row: join, beat, prune the stale, leave."""

    def __init__(self, store: Store, hostname: str, options: ManagerOptions, executor: str) -> None:
        self.store = store
        #: A manager not seen for this long is stale, as a task without heartbeat.
        self.stale_after = options.heartbeat_timeout
        self.info = registry.ManagerInfo(
            hostname=hostname,
            pid=os.getpid(),
            version=_version(),
            queues=tuple(options.queues),
            max_running=options.slots,  # its own share: the dashboard shows running/max
            executor=executor,
        )
        self.manager_id: int | None = None

    def join(self) -> None:
        """Insert this manager's row (again, if a prune took it while it was stalled)."""
        try:
            self.manager_id = registry.join(self.store, self.info)
        except SQLAlchemyError as exc:
            self._failed("cannot register in the managers table", exc)

    def beat(self, running: int) -> None:
        """This manager is alive with ``running`` tasks; the stale rows of others go."""
        if self.manager_id is None:
            self.join()
            if self.manager_id is None:
                return
        try:
            if not registry.beat(self.store, self.manager_id, running, self.stale_after):
                self.manager_id = None  # pruned while stalled: join again next pass
        except SQLAlchemyError as exc:
            self._failed("cannot beat in the managers table", exc)

    def leave(self) -> None:
        if self.manager_id is None:
            return
        try:
            registry.leave(self.store, self.manager_id)
        except SQLAlchemyError as exc:
            self._failed("cannot leave the managers table", exc)
        self.manager_id = None

    @staticmethod
    def _failed(what: str, exc: SQLAlchemyError) -> None:
        # One line: a missing table (schema not upgraded) must not flood the log with SQL.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        # The error rides along (``error``) for the outage filter: a full disk
        # or a lost server first met here opens the outage.
        logger.warning(
            "%s: %s",
            what,
            reason,
            extra={"action": "registry_error", "tache_id": None, "error": exc},
        )
