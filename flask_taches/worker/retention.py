"""Retention: managers delete the finished tasks ``TACHES_RETENTION`` no longer keeps.

``TACHES_RETENTION`` gives, per finished status, the days a task is kept
after its end: ``{"COMPLETED": 7, "FAILED": 30}`` in the config, or
``COMPLETED=7,FAILED=30`` in the environment. A status it does not name is
kept for ever; ``flask taches purge`` stays for by-hand cleaning.

Every ``TACHES_RETENTION_INTERVAL`` seconds each manager asks for the
``retention`` lease (:mod:`flask_taches.store.leases`), held for the
interval: one manager of all those sharing the database wins, and deletes
batches of ``TACHES_RETENTION_BATCH`` tasks (one transaction each, attached
files removed after it) for at most :data:`ROUND_BUDGET` seconds, so its loop
keeps supervising its children. What is left waits for its next pass, when
it renews the lease it holds.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..clock import utcnow
from ..exceptions import ConfigurationError
from ..status import FINISHED
from ..store import Store, leases
from .log import logger

LEASE = "retention"
#: Most seconds one pass spends deleting, before the manager's loop goes on.
ROUND_BUDGET = 1.0
_FINISHED = sorted(s.value for s in FINISHED)


def parse_retention(value: Any) -> dict[str, float]:
    """``TACHES_RETENTION`` as ``{status: days}``, or a one-line ConfigurationError."""
    if not value:
        return {}
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    pairs: list[tuple[Any, ...]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        try:
            pairs = [tuple(str(item).split("=", 1)) for item in value]
        except TypeError:
            raise _bad(value, "give a mapping like {'COMPLETED': 7}") from None
    days: dict[str, float] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise _bad(value, f"{pair[0]!r} is not STATUS=DAYS")
        status, raw = str(pair[0]).strip().upper(), pair[1]
        if status not in _FINISHED:
            raise _bad(value, f"{status!r} is not a finished status ({', '.join(_FINISHED)})")
        try:
            days[status] = float(raw)
        except (TypeError, ValueError):
            raise _bad(value, f"{raw!r} is not a number of days") from None
        if days[status] < 0:
            raise _bad(value, "days must not be negative")
    return days


def _bad(value: Any, why: str) -> ConfigurationError:
    return ConfigurationError(f"TACHES_RETENTION={value!r}: {why}")


class Retention:
    """One manager's share of the retention policy."""

    def __init__(
        self,
        store: Store,
        config: Mapping[str, Any],
        *,
        holder: str,
        folder_of: Callable[[int], Path],
    ) -> None:
        self.store = store
        self.days = parse_retention(config["TACHES_RETENTION"])
        self.interval = float(config["TACHES_RETENTION_INTERVAL"])
        self.batch = int(config["TACHES_RETENTION_BATCH"])
        self.holder = holder
        self.folder_of = folder_of
        self.next_pass = 0.0  # monotonic; the first pass is at the manager's start

    @classmethod
    def of_manager(cls, store: Store, app: Any, hostname: str) -> Retention:
        from ..state import app_state

        return cls(
            store,
            app.config,
            holder=f"{hostname}:{os.getpid()}",
            folder_of=app_state(app).fichier_folder,
        )

    def run_due(self, now: float) -> int:
        """If its time has come and this manager wins the lease, delete; how many."""
        if not self.days or now < self.next_pass:
            return 0
        self.next_pass = now + self.interval
        try:
            if not leases.take(self.store, LEASE, self.holder, self.interval):
                return 0
            deleted, batches, finished = self._delete_for(ROUND_BUDGET)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            logger.warning(
                "retention failed: %s", reason, extra={"action": "retention", "tache_id": None}
            )
            return 0
        if not finished:
            self.next_pass = now  # more to delete: go on at the next pass, lease renewed
        if deleted:
            logger.info(
                "retention: %s finished task(s) deleted in %s batch(es)%s",
                deleted,
                batches,
                "" if finished else " (more next pass)",
                extra={"action": "retention", "tache_id": None},
            )
        return deleted

    def _delete_for(self, budget: float) -> tuple[int, int, bool]:
        """Delete batches for at most ``budget`` seconds: tasks deleted, batches, all gone."""
        deadline = time.monotonic() + budget
        deleted = batches = 0
        now = utcnow()
        for status, days in sorted(self.days.items()):
            cutoff = now - timedelta(days=days)
            while ids := self.store.purge_batch([status], cutoff, self.batch):
                for tache_id in ids:
                    shutil.rmtree(self.folder_of(tache_id), ignore_errors=True)
                deleted += len(ids)
                batches += 1
                if time.monotonic() >= deadline:
                    return deleted, batches, False
        return deleted, batches, True
