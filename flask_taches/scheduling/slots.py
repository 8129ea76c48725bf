"""Which slot of a schedule is due now: the rule of catch-up, as a pure function.

Only the latest slot at or before ``now`` is ever a candidate, so a manager
back after a long downtime adds one task, never a burst of the missed ones.
That slot is due unless a task was added for it (or a later one) already, or
it fell before any manager first saw the schedule (a new schedule does not
fire for its past). A slot more than :data:`LATE_AFTER` old when a manager
comes to it was missed: ``catch_up=True`` (the default) still adds it, once;
``catch_up=False`` skips it and waits for the next one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .timing import Timing

#: A slot this late is a missed one (covers the gap between cron-started managers).
LATE_AFTER = timedelta(minutes=1)


def due_slot(
    timing: Timing,
    *,
    now: datetime,
    first_seen: datetime,
    done_through: datetime | None,
    catch_up: bool,
) -> datetime | None:
    """The slot to add a task for now, or None.

    ``first_seen``: when a manager first saw the schedule; ``done_through``: the
    latest slot already handled (a task added for it, by any manager).
    """
    slot = timing.latest(now)
    if slot is None or slot < first_seen:
        return None
    if done_through is not None and slot <= done_through:
        return None
    if not catch_up and now - slot > LATE_AFTER:
        return None
    return slot
