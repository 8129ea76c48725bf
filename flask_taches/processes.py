"""Processes on this host: is a pid alive, stopping a process group, signal handlers.

The rescue (a manager's, or a page's) asks :func:`pid_alive`: on the task's own
host a pid is a better witness than a heartbeat, which a task can miss while it
is alive (a long C call holding the GIL, a database lock held by someone else).
The manager and the runner both install handlers with :func:`handling`, and
stop a task's process with what it spawned through :func:`signal_group`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import FrameType
from typing import Any

from .clock import as_utc

#: SIGKILL where it exists (Windows has none: terminate is as hard as it gets there).
SIGKILL = int(getattr(signal, "SIGKILL", signal.SIGTERM))

Handler = Callable[[int, "FrameType | None"], Any]

#: How long after its claim a task's process may have started and still be it, in
#: seconds: an executor starts it just after the claim (``run ID`` and a pool's
#: child, before).
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
    """Did process ``pid`` start before ``when`` + ``slack`` s? None if unknowable.

    A pid is reused once its process is gone; a process that started long
    after the task was claimed is somebody else, and must never be killed for
    it. One that started before the claim and still lives was alive all along
    under that pid, so it is the task's (``run ID``, a pool executor's child).
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
    return started - as_utc(when).timestamp() <= slack


def signal_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``'s process group if it leads one, else to ``pid``.

    A task's process leads a group of its own (the executors start it in a new
    session), so what it spawned is stopped with it. False when it is gone, or
    not ours to signal.
    """
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_leftovers(pid: int) -> None:
    """Once ``pid``, a group leader, has exited (and before it is reaped): SIGKILL its group.

    What a task started and left running dies with it. Called before the
    reap, the exited leader still holds its pid, so the group cannot be
    someone else's; a group already empty is no error.
    """
    waitid = getattr(os, "waitid", None)
    if waitid is None or not hasattr(os, "killpg"):
        return  # not Linux/BSD: a Windows task's children are its own business
    try:
        exited = waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return
    if exited is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def stop_own_children() -> None:
    """SIGKILL and reap the processes this one started and left running (Linux).

    A pool child runs many tasks and stays the leader of its group, so it
    cannot kill its group after each task as the manager does after a forked
    task's exit: it kills what the task left among its own children instead
    (read from ``/proc``, a few reads). A process the task detached (a double
    fork) escapes this, and dies with the group when the pool child leaves.
    """
    for pid in _own_children():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _own_children() -> list[int]:
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for thread in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{thread}/children", "rb") as f:
                pids.extend(int(pid) for pid in f.read().split())
    return pids


def in_main_thread() -> bool:
    """Signal handlers can only be installed from the main thread."""
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handling(handlers: Mapping[int, Handler]) -> Iterator[bool]:
    """Install ``handlers`` for the block, then put the previous ones back.

    Yields False (and installs nothing) outside the main thread or the main
    interpreter, where Python allows no handler.
    """
    previous: dict[int, Any] = {}
    installed = in_main_thread()
    if installed:
        try:
            for signum, handler in handlers.items():
                previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main interpreter
            restore(previous)
            previous, installed = {}, False
    try:
        yield installed
    finally:
        restore(previous)


def restore(previous: Mapping[int, Any]) -> None:
    """Put back handlers returned by ``signal.signal`` (None meant the default)."""
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def reset_to_default(signums: Iterator[int] | tuple[int, ...]) -> None:
    """In a forked child: the default action for each signal, no wake-up fd."""
    if not in_main_thread():
        return
    signal.set_wakeup_fd(-1)
    for signum in signums:
        signal.signal(signum, signal.SIG_DFL)


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
