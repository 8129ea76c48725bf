"""The subprocess executor: ``flask taches run ID --attempt N`` in a new process.

It runs the manager's own application, as the bundle does; it is portable
and the only choice on Windows, where a task's process is stopped with
``terminate``/``kill`` instead of a signal to its group.
"""

from __future__ import annotations

import subprocess
import sys

from flask import has_app_context

from ...processes import SIGKILL, stop_leftovers
from ...state import app_state
from ...store import Claimed
from .base import Child, Executor

IS_WINDOWS = sys.platform == "win32"


class SpawnedChild(Child):
    """A ``flask taches run`` process started by the manager."""

    def __init__(self, claimed: Claimed, process: subprocess.Popen[bytes]) -> None:
        super().__init__(claimed, process.pid)
        self.process = process

    def poll(self) -> int | None:
        if self.returncode is None:
            if not self.keep_processes:
                stop_leftovers(self.pid)
            self.returncode = self.process.poll()
        return self.returncode

    def _send(self, signum: int) -> None:
        if not IS_WINDOWS:
            super()._send(signum)
        elif signum == SIGKILL:
            self.process.kill()
        else:
            self.process.terminate()


class SubprocessExecutor(Executor):
    """Spawns ``flask taches run ID --attempt N`` with the manager's application.

    ``app_import_path`` is the manager's own ``--app`` (or ``FLASK_APP``); the
    environment (``.env`` already loaded into it) is passed on as it is.
    """

    name = "subprocess"

    def __init__(
        self, app_import_path: str | None, *, verbosity: int = 0, keep_processes: bool | None = None
    ) -> None:
        self.app_import_path = app_import_path
        self.verbosity = verbosity
        if keep_processes is None:  # the setting of the app in context (the manager's)
            config = app_state().config if has_app_context() else {}
            keep_processes = bool(config.get("TACHES_KEEP_TASK_PROCESSES", False))
        self.keep_processes = keep_processes

    def command(self, claimed: Claimed) -> list[str]:
        args = [sys.executable, "-m", "flask"]
        if self.app_import_path:
            args += ["--app", self.app_import_path]
        args += ["taches", "run", str(claimed.id), "--attempt", str(claimed.attempt)]
        if self.verbosity:
            args.append("-" + "v" * self.verbosity)
        return args

    def start(self, claimed: Claimed) -> Child:
        sys.stdout.flush()
        sys.stderr.flush()
        command = self.command(claimed)
        if IS_WINDOWS:
            group = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined,unused-ignore]
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, close_fds=True, creationflags=group
            )
        else:
            # Below the manager's -vv, what the task prints goes nowhere.
            output = None if self.verbosity else subprocess.DEVNULL
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                close_fds=True,
                start_new_session=True,
            )
        child = SpawnedChild(claimed, process)
        child.keep_processes = self.keep_processes
        return child
