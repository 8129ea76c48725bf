"""Real ``flask taches start`` processes for the manager's integration tests.

:class:`Managers` starts them with the test's database and small timings,
keeps their output in files, and in teardown stops every process the test
made: the managers, and the task processes they left behind (found by a
marker in their environment). While it is active the test process is a
*child subreaper* (Linux), so task processes orphaned by a ``kill -9`` of
their manager are reparented to it and reaped here instead of lingering as
zombies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from flask_taches.models import taches_table
from tests import polling
from tests.app import DATABASE_URL_VARIABLE, INSTANCE_PATH_VARIABLE, taches

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.app:create_app"
MARKER_VARIABLE = "FT_TEST_MANAGER_MARKER"
PR_SET_CHILD_SUBREAPER = 36
POLL = 0.05  # seconds between two looks at the database while waiting
STOP_WAIT = 15.0  # seconds a manager gets to exit after SIGTERM in teardown

#: Small timings so the tests are quick; each test may override some.
FAST_SETTINGS = {
    "TACHES_HEARTBEAT": "0.2",
    "TACHES_HEARTBEAT_TIMEOUT": "3",
    "TACHES_FLUSH_INTERVAL": "0.1",
    "TACHES_KILL_GRACE": "0.5",
    "TACHES_POLL": "0.05",
    "TACHES_RETRY_DELAY": "0.1",
    "TACHES_DRAIN_GRACE": "10",
}

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T], timeout: float, details: Callable[[], str] = lambda: ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail saying ``what`` otherwise."""
    return polling.wait_for(probe, what, timeout, details, interval=POLL)


def rows() -> dict[int, dict[str, Any]]:
    """Every task's row, read fresh (no ORM cache)."""
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table).order_by(taches_table.c.id)).mappings().all()
    return {row["id"]: dict(row) for row in found}


def row(tache_id: int) -> dict[str, Any]:
    return rows()[tache_id]


def messages(tache_id: int) -> list[str]:
    return [entry["message"] for entry in row(tache_id)["logs"] or []]


def _set_subreaper(on: bool) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


class Managers:
    """Starts managers for one test and cleans every process up after it."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.tmp_path = tmp_path
        self.marker = uuid.uuid4().hex
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TACHES_", "FLASK_"))
        }
        self.env.update(FAST_SETTINGS)
        self.env.update(settings)
        self.env.update(
            {
                DATABASE_URL_VARIABLE: os.environ[DATABASE_URL_VARIABLE],
                INSTANCE_PATH_VARIABLE: os.environ[INSTANCE_PATH_VARIABLE],
                "PYTHONPATH": str(ROOT),
                MARKER_VARIABLE: self.marker,
                # setproctitle would write long titles over the environment, where
                # the cleanup finds this test's processes by their marker.
                "SPT_NOENV": "1",
            }
        )
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.subreaper = _set_subreaper(True)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """``flask --app tests.app:create_app taches start ARGS`` with output in a file."""
        output = self.tmp_path / f"manager-{len(self.processes)}.log"
        with open(output, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", APP, "taches", "start", *args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, output))
        return process

    def command(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``flask taches ARGS`` on the test app with the managers' settings, run to its end."""
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", APP, "taches", *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def output(self) -> str:
        """Everything the managers printed, for failure messages."""
        parts = []
        for process, path in self.processes:
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- manager {process.pid} (exit {process.poll()}):\n{text}")
        return "\n".join(parts)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = STOP_WAIT) -> int:
        """SIGTERM one manager and wait for it; its exit code."""
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"manager {process.pid} still running {timeout:g} s after SIGTERM\n" + self.output()
            ) from None

    def close(self) -> None:
        """Kill whatever is left (managers, task processes) and reap it."""
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for pid in self.marked_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap_orphans()
        if self.subreaper:
            _set_subreaper(False)

    def marked_pids(self) -> list[int]:
        """Live processes whose environment carries this test's marker."""
        needle = f"{MARKER_VARIABLE}={self.marker}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def _reap_orphans(self) -> None:
        """Reap task processes reparented to us (only pids this test's rows name)."""
        if not self.subreaper:
            return
        pids = {r["pid"] for r in rows().values() if r["pid"]}
        # Earlier attempts' processes are no longer in the rows; -v printed them.
        pids.update(int(pid) for pid in re.findall(r"in process (\d+)", self.output()))
        deadline = time.monotonic() + STOP_WAIT
        for pid in pids:
            while _parent_of(pid) == os.getpid() and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done:
                        break
                time.sleep(POLL)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[1])


@contextlib.contextmanager
def managers(tmp_path: Path, **settings: str) -> Iterator[Managers]:
    group = Managers(tmp_path, **settings)
    try:
        yield group
    finally:
        group.close()
