"""Schedules' slots: each slot of a schedule gets one task, whichever managers see it.

The key is the schedule's name (the primary key of ``taches_schedules``) and its
slot: a manager that finds a slot due calls :meth:`SlotVerbs.take_slot`, which
in one transaction moves the schedule's ``last_slot`` forward to the slot
(``UPDATE ... WHERE name = :name AND (last_slot IS NULL OR last_slot < :slot)``)
and, only if that changed the row, inserts the slot's task. The database
decides between managers that come to the slot at once: PostgreSQL and MariaDB
lock the row and re-check the WHERE once the first writer commits, SQLite's
writes are serial. So each slot is added once across all managers and hosts,
and a late manager can never add a slot older than the newest one (a row per
slot could not promise that once old rows are pruned, and would grow for ever).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..models import schedules_table
from .unique import UniqueVerbs

if TYPE_CHECKING:
    from .base import Store

S = schedules_table.c


@dataclass(frozen=True)
class ScheduleRow:
    """What the database knows of one schedule."""

    name: str
    created_at: datetime
    last_slot: datetime | None
    last_id: int | None


class SlotVerbs(UniqueVerbs):
    """Mixed into :class:`~flask_taches.store.base.Store`."""

    def _as_store(self) -> Store:
        return self  # type: ignore[return-value]

    def schedule_rows(self, names: Sequence[str], now: datetime) -> dict[str, ScheduleRow]:
        """The rows of these schedules, the missing ones created as first seen ``now``."""
        with self._as_store().read() as conn:
            known = read_schedules(conn, names)
        for name in names:
            if name in known:
                continue
            try:
                with self._as_store().write() as conn:
                    conn.execute(insert(schedules_table), {"name": name, "created_at": now})
            except IntegrityError:
                pass  # another manager saw it first: its row is the one
        with self._as_store().read() as conn:
            return read_schedules(conn, names)

    def take_slot(self, name: str, slot: datetime, values: dict[str, Any]) -> int | None:
        """Add the task of ``slot`` unless a manager did (or took a later slot); its id.

        A unique schedule whose previous task is still live takes the slot and
        adds nothing: the live task's id is returned.
        """
        with self._as_store().write() as conn:
            moved = conn.execute(
                update(schedules_table)
                .where(self._as_store().same_text(S.name, name))
                .where(or_(S.last_slot.is_(None), S.last_slot < slot))
                .values(last_slot=slot)
            ).rowcount
            if moved != 1:
                return None
            if values.get("unique_key"):
                tache_id, _ = self.insert_unique(conn, values)
            else:
                (tache_id,) = self.insert(conn, [values])
            conn.execute(
                update(schedules_table)
                .where(self._as_store().same_text(S.name, name))
                .values(last_id=tache_id)
            )
            return tache_id


def read_schedules(conn: Connection, names: Sequence[str]) -> dict[str, ScheduleRow]:
    rows = conn.execute(select(schedules_table).where(S.name.in_(list(names)))).mappings()
    return {row["name"]: ScheduleRow(**row) for row in rows}
