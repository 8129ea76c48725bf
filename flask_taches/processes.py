"""What this host can tell about a task's process from its pid.

Used by the rescue (a manager's, or a page's): on the task's own host a pid is
a better witness than a heartbeat, which a task can miss while it is alive
(a long C call holding the GIL, a database lock held by someone else).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

#: How far from its claim a task's process may have started and still be it, in
#: seconds: ``run ID`` starts before it claims, an executor just after.
START_SLACK = 120.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if sys.platform == "win32":
        return True  # no cheap check without side effects: heartbeats decide there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS): existing is all we can tell
    return stat[0] not in ("Z", "X")


def started_near(pid: int, when: datetime, slack: float = START_SLACK) -> bool | None:
    """Did process ``pid`` start within ``slack`` s of ``when``? None if unknowable.

    A pid is reused once its process is gone; a process that started long
    after the task was claimed is somebody else, and must never be killed for it.
    """
    stat = _proc_stat(pid)
    boot = _boot_time()
    if stat is None or boot is None:
        return None
    try:
        ticks = int(stat[19])  # field 22 of /proc/PID/stat, counted after the state
    except (IndexError, ValueError):
        return None
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    moment = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return abs(started - moment.timestamp()) <= slack


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat from the state letter on (the name may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None
