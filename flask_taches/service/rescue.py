"""The stale-RUNNING rescue a page triggers, so a dead host's task does not show RUNNING forever.

The managers rescue every round; while none runs, a task whose host died
would stay RUNNING on every page. So before a page shows tasks it asks for
this rescue, which runs at most once per ``TACHES_HEARTBEAT`` seconds per
process (the time is kept on the app's state), with the managers' rule: a
task of this very host whose process lives is left to its timeout.
"""

from __future__ import annotations

import socket
import time

from ..processes import pid_alive
from ..signals import finished_elsewhere
from ..state import app_state
from ..store import Rescued


def rescue_stale() -> list[Rescued]:
    """INTERRUPT RUNNING tasks whose heartbeat stopped; what was rescued (none when too soon)."""
    state = app_state()
    now = time.monotonic()
    if now - state.last_page_rescue < float(state.config["TACHES_HEARTBEAT"]):
        return []
    state.last_page_rescue = now
    rescued = state.store.rescue(
        heartbeat_timeout=float(state.config["TACHES_HEARTBEAT_TIMEOUT"]),
        hostname=socket.gethostname(),
        is_alive=pid_alive,
    )
    for found in rescued:
        finished_elsewhere(found.id, found.attempt, found.status)
    return rescued
