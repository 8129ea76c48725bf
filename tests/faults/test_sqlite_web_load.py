"""SQLite under web load: a real HTTP server answers the pages while a manager drains.

Four client threads ask the batch route (50 ids) and the dashboard of a
threaded ``flask run`` while one manager drains 1,000 tasks that log and
report progress. No answer is a 5xx, none says "database is locked", nor
does any log or row. The batch route's p50 / p99 under that load are printed
with the server's CPU per answer (figures, not assertions: the machine's load
decides them).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from flask_taches import Status, Tache
from tests.app import db, taches
from tests.faults.probes import settled, statuses
from tests.faults.servers import free_port
from tests.manager_helpers import APP, ROOT, managers, rows, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TASKS = 1000
CLIENTS = 4
BATCH = 50
DRAIN_DEADLINE = 150.0  # 1,000 tasks under 4 clients: about 60 s on two idle cores
LOCKED = "database is locked"


class Clients:
    """Threads asking the batch route and the dashboard until told to stop."""

    def __init__(self, base: str, ids: list[int]) -> None:
        self.base, self.ids = base, ids
        self.batch_ms: list[float] = []
        self.failures: list[str] = []
        self.answers = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, seed: int) -> None:
        chance = random.Random(seed)
        while not self._stop.is_set():
            ids = ",".join(str(i) for i in chance.sample(self.ids, BATCH))
            started = time.perf_counter()
            self._get(f"{self.base}/taches/status?ids={ids}")
            self.batch_ms.append((time.perf_counter() - started) * 1000)
            self._get(f"{self.base}/taches/")

    def _get(self, url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                body = answer.read().decode(errors="replace")
                code = answer.status
        except urllib.error.HTTPError as exc:
            body, code = exc.read().decode(errors="replace"), exc.code
        except OSError as exc:
            self.failures.append(f"{url[:60]}: {exc}")
            return
        self.answers += 1
        if code >= 500 or LOCKED in body:
            self.failures.append(f"{code} {url[:60]}: {body[:300]}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@pytest.mark.taches_config(TACHES_MAX_LOGS=1000)
def test_sqlite_answers_the_pages_while_a_manager_drains(
    app: Flask, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with app.app_context():
        ids = taches.add_many(
            Tache(method="tests.faults.tasks:log_and_report", parametres={"lines": 20})
            for _ in range(TASKS)
        )
        db.session.remove()
        port = free_port()
        # The default flush interval: the pages read what a user's manager writes.
        with managers(tmp_path, TACHES_MAX="4", TACHES_FLUSH_INTERVAL="0.5") as group:
            web_log = tmp_path / "web.log"
            with open(web_log, "wb") as out:
                server = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "flask", "--app", APP, "run"),
                        *("--port", str(port), "--with-threads", "--no-reload", "--no-debugger"),
                    ],
                    cwd=ROOT,
                    env=group.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                base = f"http://127.0.0.1:{port}"
                wait_for("the web server answers", lambda: _answers(base), 60.0, web_log.read_text)
                with Clients(base, ids) as clients:
                    group.start("--forever", "-v")
                    try:
                        wait_for(
                            "every task ended",
                            settled,
                            DRAIN_DEADLINE,
                            lambda: f"{statuses()}\n{group.output()[-3000:]}",
                        )
                    finally:
                        cpu = cpu_seconds(server.pid)
                        with capsys.disabled():
                            print(f"\n{figures(clients, cpu)} ({statuses()})")
            finally:
                server.terminate()
                server.wait(15)
            output = group.output() + web_log.read_text(errors="replace")
            final = rows()
    assert clients.failures == [], clients.failures[:5]
    assert LOCKED not in output
    assert {final[i]["status"] for i in ids} == {Status.COMPLETED.value}
    assert not any(LOCKED in str(r["logs"]) for r in final.values())


def figures(clients: Clients, cpu: float) -> str:
    """The batch's p50 / p99, and the server's CPU per answer (what the load moves least)."""
    times = clients.batch_ms or [0.0]
    per_answer = cpu * 1000 / max(1, clients.answers)
    return (
        f"SQLite under web load: {len(times)} batch answers ({BATCH} ids, {CLIENTS}"
        f" clients, {clients.answers} answers in all) p50 {statistics.median(times):.0f} ms"
        f" / p99 {percentile(times, 0.99):.0f} ms while {TASKS} tasks drained;"
        f" the server's CPU {per_answer:.1f} ms per answer, load {os.getloadavg()[0]:.1f}"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux's ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/taches/status?ids=1", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False
