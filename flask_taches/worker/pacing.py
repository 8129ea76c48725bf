"""How long an idle manager waits before it polls the database again.

Where the database wakes the manager at every commit that makes work ready
(SQLite's file watch, PostgreSQL's LISTEN, MySQL's looks every ``TACHES_POLL``:
:attr:`WakeSource.trusted`), a poll only finds what no commit announces: a
task whose ``run_at`` comes due, and a slot under the global ``TACHES_MAX``
freed on another host. The first is waited for exactly (the earliest
``run_at`` is read after an empty claim); for the second the manager polls
every ``TACHES_IDLE_POLL`` seconds. A source that is not trusted (a listener
that broke and is not back yet) leaves the manager polling every
``TACHES_POLL`` seconds.

An idle manager thus claims a few times a minute instead of five times a
second (``bench/idle.py`` measures what it costs).
"""

from __future__ import annotations

from ..store import Store
from .options import ManagerOptions


def next_poll_in(store: Store, options: ManagerOptions, *, got: int, trusted: bool) -> float:
    """Seconds until the next poll, after a claim that took ``got`` tasks (>= 0)."""
    poll, idle_poll = options.poll, options.idle_poll
    if got > 0 or not trusted or idle_poll <= poll:
        return poll
    try:
        due = store.next_due(options.queues or None)
    except Exception:  # any driver error: the next claim will say it
        return poll
    if due is None:
        return idle_poll
    return min(idle_poll, max(poll, due))
