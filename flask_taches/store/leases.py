"""Leases: work that one manager at a time does per interval, held in the database.

A lease is a row of ``taches_leases`` (its name, who holds it, until when).
:func:`take` gives it to a caller when nobody holds it, when the holder's time
is up, or when the caller holds it already (renewed). The decision is one
conditional UPDATE (or the INSERT of a lease never taken), so two managers
asking at once cannot both win, on any database: the loser's UPDATE matches
no row, the loser's INSERT hits the primary key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from ..clock import utcnow
from ..models import leases_table

if TYPE_CHECKING:
    from .base import Store

L = leases_table.c


def take(store: Store, name: str, holder: str, seconds: float) -> bool:
    """Hold lease ``name`` for ``seconds`` if it is free, expired or ours already."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    with store.write() as conn:
        won = conn.execute(
            update(leases_table)
            .where((L.name == name) & ((L.until <= now) | (L.holder == holder)))
            .values(holder=holder, until=until)
        ).rowcount
    if won:
        return True
    try:
        with store.write() as conn:
            conn.execute(insert(leases_table).values(name=name, holder=holder, until=until))
    except IntegrityError:
        return False  # it exists and someone else holds it
    return True
