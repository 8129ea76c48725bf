"""SQLite on a small tmpfs that fills up while tasks log.

The manager survives and says why in one line (an outage, not a line per
poll); once the tmpfs is given room again, no row is left RUNNING and
``PRAGMA integrity_check`` is ``ok``. The mount is the test's own, removed in
``finally``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_taches import Tache
from tests.app import db, taches
from tests.conftest import _make_app
from tests.faults.probes import settled, statuses
from tests.faults.servers import missing
from tests.manager_helpers import managers, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SMALL = "2m"  # the tmpfs while it fills
ROOMY = "64m"  # once space is back
TASKS = 150  # each logs 50 lines of 500 characters: about 4 MB in all
FULL_DEADLINE = 60.0
FULL_FOR = 4.0  # seconds the disk stays full once the manager said so
DRAIN_DEADLINE = 100.0


@contextlib.contextmanager
def small_tmpfs() -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mount"):
        missing("root and mount (a small tmpfs)")
    folder = Path(tempfile.mkdtemp(prefix="ft-full-"))
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(folder)], check=True
        )
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    finally:
        folder.rmdir()


def resize(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def test_a_full_disk_is_survived_and_leaves_the_file_sound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    with small_tmpfs() as disk:
        path = disk / "taches.sqlite"
        for app in _make_app(f"sqlite:///{path}", tmp_path, monkeypatch, request):
            with app.app_context():
                taches.add_many(
                    Tache(method="tests.faults.tasks:log_much", max_attempts=3)
                    for _ in range(TASKS)
                )
                db.session.remove()
                with managers(tmp_path, TACHES_MAX="4") as group:
                    manager = group.start("--forever", "-v")
                    wait_for(
                        "the manager says the disk is full",
                        lambda: "database unreachable" in group.output(),
                        FULL_DEADLINE,
                        lambda: f"{statuses()}\n{group.output()[-5000:]}",
                    )
                    time.sleep(FULL_FOR)  # the tasks' writes and ends meet the full disk
                    resize(disk, ROOMY)
                    wait_for(
                        "every task ended once space is back",
                        settled,
                        DRAIN_DEADLINE,
                        lambda: f"{statuses()}\n{group.output()[-5000:]}",
                    )
                    assert manager.poll() is None, group.output()[-5000:]
                    assert group.stop(manager) == 0
                    output = group.output()
                db.session.remove()
                db.engine.dispose()
                taches.store().engine.dispose()
        outages = re.findall(r"database unreachable \(.*", output)
        assert len(outages) == 1 and "full" in outages[0], output[-5000:]
        assert "Traceback" not in output, output[-5000:]
        check = sqlite3.connect(path)
        try:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            check.close()
