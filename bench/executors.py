"""Where a no-op task's CPU goes, executor by executor: the manager's share and the tasks'.

    .venv/bin/python bench/executors.py [--tasks 500] [--max 2] [--repeats 2] [--no-postgres]

For the fork and the pool executor, on SQLite and PostgreSQL, interleaved and
repeated (medians shown), it drains ``--tasks`` no-op tasks with one real
``flask taches start --forever -v`` and prints the drain rate, the CPU per
task of the manager itself and of its task processes (the manager's own
closing log line: ``os.times`` of it and of the children it reaped), the
manager's page faults per task (``/proc/PID/stat``: a forked manager pays the
copy-on-write of every page it writes while a child shares it) and its
resident memory. The load average is printed: on a shared machine the
figures move with it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench import app as bench_app  # noqa: E402
from bench import run as single  # noqa: E402
from flask_taches import Status, Tache  # noqa: E402
from flask_taches.models import taches_table  # noqa: E402

EXECUTORS = ("fork", "pool")
_CPU_LINE = re.compile(r"CPU ([\d.]+) s here, ([\d.]+) s in tasks")


@dataclass(frozen=True)
class Run:
    rate: float  # tasks/s, first start to last end
    manager_ms: float  # CPU per task in the manager itself
    tasks_ms: float  # CPU per task in its task processes
    faults: float  # the manager's minor page faults per task
    rss_mb: float  # the manager's resident memory at the end of the drain


def manager_counters(pid: int) -> tuple[int, float]:
    """Minor page faults so far, and resident megabytes, of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    faults = int(stat[stat.rfind(")") + 2 :].split()[7])
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return faults, pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def drain(app: Flask, url: str, executor: str, tasks: int, max_running: int) -> Run:
    with app.app_context():
        single.reset()
        bench_app.taches.add_many(Tache(method=single.NOOP) for _ in range(tasks))
        bench_app.db.session.remove()
        command = ["taches", "start", "--forever", "--max", str(max_running), "-v"]
        with tempfile.TemporaryFile(prefix="taches-bench-manager-") as log:
            process = subprocess.Popen(
                single.flask_command(*command, "--executor", executor),
                cwd=ROOT,
                env=single.child_env(url),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                single.wait_until(
                    f"{tasks} tasks drained", lambda: single.count(Status.COMPLETED) == tasks
                )
                faults, rss = manager_counters(process.pid)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(120)
            log.seek(0)
            output = log.read().decode(errors="replace")
        with bench_app.taches.store().read() as conn:
            first, last = conn.execute(
                select(func.min(taches_table.c.started_at), func.max(taches_table.c.ended_at))
            ).one()
    found = _CPU_LINE.search(output)
    if found is None:
        raise SystemExit(f"no CPU line in the manager's output:\n{output[-2000:]}")
    here, children = float(found.group(1)), float(found.group(2))
    return Run(
        rate=tasks / (last - first).total_seconds(),
        manager_ms=here / tasks * 1000,
        tasks_ms=children / tasks * 1000,
        faults=faults / tasks,
        rss_mb=rss,
    )


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in Run.__annotations__))


def print_line(label: str, executor: str, run: Run) -> None:
    total = run.manager_ms + run.tasks_ms
    print(
        f"{label:<10} {executor:<5} {run.rate:>7.0f}/s   CPU/task {total:5.1f} ms "
        f"(manager {run.manager_ms:4.1f} + tasks {run.tasks_ms:4.1f})   "
        f"manager faults/task {run.faults:5.0f}   manager RSS {run.rss_mb:.0f} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--max", type=int, default=2, help="--max of the manager")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print(f"load before: {single.load()}; {args.tasks} no-op tasks, --max {args.max}")
    databases = [("SQLite", single.sqlite_database)]
    if not args.no_postgres:
        databases.append(("PostgreSQL", single.postgres_database))
    for label, database in databases:
        with database() as url:
            app = single.make_app(url)
            runs: dict[str, list[Run]] = {executor: [] for executor in EXECUTORS}
            for _ in range(args.repeats):
                for executor in EXECUTORS:
                    runs[executor].append(drain(app, url, executor, args.tasks, args.max))
            for executor in EXECUTORS:
                print_line(label, executor, median_run(runs[executor]))
    print(f"load after: {single.load()}")


if __name__ == "__main__":
    main()
