"""Time as flask-taches stores and hands it out: aware UTC, always.

The database columns hold naive UTC (portable across dialects); everything a
caller sees is aware UTC. A naive datetime coming in is taken as UTC already.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Aware UTC now."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC: an aware one is converted, a naive one is UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
