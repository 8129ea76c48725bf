"""SQLite's file watch: every commit of another process wakes an idle manager's wait.

The writer is a real process adding tasks one at a time through ``add()`` (the
app's engine, at its own durability), each after a random pause so that the
watch is caught anywhere in its wait. The watch's own count of why each wait
ended is the verdict: a commit missed shows up as a ``timeout``, whatever the
machine's load, so nothing here is timed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from flask_taches.store import WaitingFor, file_events
from flask_taches.store.file_watch import FileWatch
from tests.store.helpers import HOST, add, store

ROOT = Path(__file__).resolve().parents[2]
ADDS = 50
#: The wait's timeout, the watch's "poll timer": only a missed commit reaches it.
TIMEOUT = 20.0

# Reads a pause (seconds) per line, sleeps it, adds one task, prints its id.
WRITER = """
import sys, time
from tests.app import create_app, db, taches
app = create_app()
with app.app_context():
    for line in sys.stdin:
        time.sleep(float(line))
        print(taches.add("tests.manager_tasks:noop"), flush=True)
        db.session.remove()
"""


@pytest.fixture
def writer(app: Flask) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    process.wait(30)
    process.stdout.close()


@pytest.fixture(params=["inotify", "timer"])
def watch(
    request: pytest.FixtureRequest, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FileWatch]:
    if request.param == "timer":
        monkeypatch.setattr(file_events, "watch", lambda folder, names: None)
    with app.app_context():
        source = store().wake_source(WaitingFor(max_running=ADDS + 1))
        assert isinstance(source, FileWatch)
        if request.param == "inotify" and not source.uses_inotify:
            pytest.skip("no inotify here")
        yield source
        source.close()


def test_every_task_added_one_at_a_time_wakes_the_watch(
    app: Flask, watch: FileWatch, writer: subprocess.Popen[str]
) -> None:
    assert writer.stdin is not None and writer.stdout is not None
    woken = []
    with app.app_context():
        for _ in range(ADDS):
            writer.stdin.write(f"{random.uniform(0.0, 0.03):.4f}\n")
            writer.stdin.flush()
            woken.append(watch.wait(TIMEOUT))
            int(writer.stdout.readline())  # the add() has returned
            # Claimed here, as the manager would: the next wait finds nothing left.
            assert len(store().claim_batch(1, max_running=ADDS + 1, hostname=HOST)) == 1
    assert woken == [True] * ADDS
    assert dict(watch.wakes) == {"commit": ADDS}


def test_a_commit_made_between_two_waits_is_seen_by_the_next(app: Flask, watch: FileWatch) -> None:
    with app.app_context():
        add(1)
        assert watch.wait(TIMEOUT) is True
        assert dict(watch.wakes) == {"commit": 1}


def test_its_own_reads_do_not_wake_it(app: Flask, watch: FileWatch) -> None:
    with app.app_context():
        assert watch.wait(0.3) is False
        store().get_row(1)
        assert watch.wait(0.3) is False
        assert dict(watch.wakes) == {"timeout": 2}
