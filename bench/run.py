"""Every figure the manager's issue asks for, each beside this machine's own limit.

    .venv/bin/python bench/run.py [--tasks 1000] [--max 8] [--no-postgres]

Run from the repository root, by hand, on a quiet machine (the load average is
printed before and after). It creates its own SQLite file and PostgreSQL
database, runs real ``flask taches start`` processes on no-op tasks, and prints:

* drain rate (tasks/s) of the fork executor vs a bare fork + exit of this same
  warm process, serially (the manager forks one child at a time);
* drain rate of the subprocess executor vs cold ``flask`` starts run with the
  same concurrency (``flask taches run 0``: load the app, look a task up, exit);
* add() -> RUNNING with an idle manager waiting, median and 95th percentile, vs
  the floor: one claim by an already awake process;
* add() per second, one task per call and in bulk, vs the same INSERT + COMMIT
  through the bare DBAPI connection.

Ratios are measured / limit for rates, limit / measured for latencies (so 1.0
means "at the machine's limit" either way). The drain lines also give the CPU
each task cost (manager + child) and its page faults, which is what bounds a
forked no-op task on a small machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import create_engine, delete, func, select, text  # noqa: E402

from bench import app as bench_app  # noqa: E402
from flask_taches import Status, Tache  # noqa: E402
from flask_taches.clock import utcnow  # noqa: E402
from flask_taches.models import taches_table  # noqa: E402

APP = "bench.app:create_app"
NOOP = "bench.tasks:noop"
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
FORK_SAMPLES = 500  # bare forks timed for the fork limit
FLOOR_SAMPLES = 50  # claims timed for the pickup floor
BULK_SIZE = 1000  # tasks per add_many() call
POLL = 0.1  # seconds between looks at the database while a drain runs
DRAIN_DEADLINE = 900.0  # seconds a drain may take before the benchmark gives up
PARTS = ("fork", "subprocess", "pickup", "add")  # what --only can pick


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    limit_name: str
    limit: float
    higher_is_better: bool = True
    target: str = ""

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.value / self.limit if self.limit else float("nan")
        return self.limit / self.value if self.value else float("inf")


# -- databases and processes -------------------------------------------------------------


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="taches-bench-") as folder:
        yield f"sqlite:///{folder}/bench.sqlite"


@contextmanager
def postgres_database() -> Iterator[str]:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"taches_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        yield str(admin.url.set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def make_app(url: str) -> Flask:
    os.environ[bench_app.DATABASE_URL_VARIABLE] = url
    app = bench_app.create_app()
    with app.app_context():
        bench_app.db.create_all()
        # The store's first connection turns WAL on (SQLite), as any manager would.
        bench_app.taches.store().count_running()
    return app


def child_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env[bench_app.DATABASE_URL_VARIABLE] = url
    env["PYTHONPATH"] = str(ROOT)
    return env


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", APP, *args]


@contextmanager
def manager(url: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A ``flask taches start --forever`` process, stopped with SIGTERM after."""
    with tempfile.TemporaryFile(prefix="taches-bench-manager-") as log:
        process = subprocess.Popen(
            flask_command("taches", "start", "--forever", *args),
            cwd=ROOT,
            env=child_env(url),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            if process.wait(120) != 0:
                log.seek(0)
                print(log.read().decode(errors="replace"), file=sys.stderr)


def wait_until(what: str, probe: Callable[[], bool], deadline: float = DRAIN_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not probe():
        if time.monotonic() > end:
            raise SystemExit(f"benchmark gave up: {what} not seen within {deadline:g} s")
        time.sleep(POLL)


def count(status: Status) -> int:
    with bench_app.taches.store().read() as conn:
        query = (
            select(func.count())
            .select_from(taches_table)
            .where(taches_table.c.status == status.value)
        )
        return int(conn.execute(query).scalar_one())


def reset() -> None:
    with bench_app.taches.store().write() as conn:
        conn.execute(delete(taches_table))


# -- limits ------------------------------------------------------------------------------


def fork_limit(url: str) -> float:
    """Bare fork + _exit + waitpid, one at a time, per second, in a process as warm as a
    manager (a fresh one that loaded the same app and warmed the store up)."""
    result = subprocess.run(
        [sys.executable, __file__, "--fork-limit-of", url],
        cwd=ROOT,
        env=child_env(url),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def measure_forks(url: str, samples: int = FORK_SAMPLES) -> float:
    app = make_app(url)
    from flask_taches import runner, worker  # noqa: F401  (what a manager loads)

    with app.app_context():
        bench_app.taches.store().warm_up()
    gc.freeze()
    started = time.perf_counter()
    for _ in range(samples):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return samples / (time.perf_counter() - started)


def cold_start_limit(url: str, concurrency: int, samples: int) -> float:
    """Cold ``flask taches run 0`` processes (load the app, find no task, exit) per second."""
    env = child_env(url)

    def one(_: int) -> None:
        subprocess.run(
            flask_command("taches", "run", "0"),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(samples)))
    return samples / (time.perf_counter() - started)


# -- figures -------------------------------------------------------------------------------


@dataclass
class Drain:
    rate: float
    cpu_ms: float
    faults: float


def drain(app: Flask, url: str, executor: str, tasks: int, max_running: int) -> Drain:
    """Drain ``tasks`` no-op tasks with one manager; rate from first start to last end."""
    with app.app_context():
        reset()
        bench_app.taches.add_many(Tache(method=NOOP) for _ in range(tasks))
        bench_app.db.session.remove()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with manager(url, "--max", str(max_running), "--executor", executor):
            wait_until(f"{tasks} tasks drained", lambda: count(Status.COMPLETED) == tasks)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with bench_app.taches.store().read() as conn:
            first, last = conn.execute(
                select(func.min(taches_table.c.started_at), func.max(taches_table.c.ended_at))
            ).one()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Drain(
        rate=tasks / (last - first).total_seconds(),
        cpu_ms=cpu / tasks * 1000,
        faults=(after.ru_minflt - before.ru_minflt) / tasks,
    )


def pickups(app: Flask, url: str, samples: int, max_running: int) -> list[float]:
    """Milliseconds from add() returning to the row's RUNNING, with an idle manager."""
    store = bench_app.taches.store
    latencies: list[float] = []
    with app.app_context():
        reset()
        with manager(url, "--max", str(max_running)):
            for index in range(samples + 1):
                # A random pause: the idle manager is caught at any point of its wait.
                time.sleep(random.uniform(0.03, 0.09))
                tache_id = bench_app.taches.add(NOOP)
                returned = utcnow()
                bench_app.db.session.remove()
                started = _wait_started(store(), tache_id)
                if index:  # the first one also warms the manager up
                    latencies.append(max(0.0, (started - returned).total_seconds() * 1000))
                wait_until("the task completed", lambda i=tache_id: _ended(store(), i), 60)
    return latencies


def _wait_started(store: Any, tache_id: int) -> datetime:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with store.read() as conn:
            status, started = conn.execute(
                select(taches_table.c.status, taches_table.c.started_at).where(
                    taches_table.c.id == tache_id
                )
            ).one()
        if status != Status.TO_RUN.value and started is not None:
            return started
        time.sleep(0.002)
    raise SystemExit(f"benchmark gave up: task {tache_id} never claimed")


def _ended(store: Any, tache_id: int) -> bool:
    with store.read() as conn:
        status = conn.execute(
            select(taches_table.c.status).where(taches_table.c.id == tache_id)
        ).scalar_one()
    return Status(status).is_finished


def claim_floor(app: Flask, samples: int = FLOOR_SAMPLES) -> float:
    """Median milliseconds of one claim of a ready task by an awake process."""
    timings = []
    with app.app_context():
        store = bench_app.taches.store()
        for _ in range(samples):
            reset()
            bench_app.taches.add(NOOP)
            bench_app.db.session.remove()
            started = time.perf_counter()
            store.claim_batch(1, max_running=1, hostname="bench")
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def add_rates(app: Flask, calls: int) -> tuple[float, float]:
    """add() per second, one task per call, and tasks per second through add_many()."""
    with app.app_context():
        reset()
        started = time.perf_counter()
        for _ in range(calls):
            bench_app.taches.add(NOOP)
        single = calls / (time.perf_counter() - started)
        bulks = max(1, calls // BULK_SIZE)
        started = time.perf_counter()
        for _ in range(bulks):
            bench_app.taches.add_many(Tache(method=NOOP) for _ in range(BULK_SIZE))
        bulk = bulks * BULK_SIZE / (time.perf_counter() - started)
        bench_app.db.session.remove()
    return single, bulk


def insert_limits(app: Flask, calls: int) -> tuple[float, float]:
    """The same rows through the bare DBAPI connection: one INSERT + COMMIT, and bulk."""
    with app.app_context():
        reset()
        raw = bench_app.db.engine.raw_connection()
        try:
            mark = "?" if bench_app.db.engine.dialect.paramstyle == "qmark" else "%s"
            sql, values = insert_statement(mark)
            cursor = raw.cursor()
            started = time.perf_counter()
            for _ in range(calls):
                cursor.execute(sql, values)
                raw.commit()
            single = calls / (time.perf_counter() - started)
            bulks = max(1, calls // BULK_SIZE)
            started = time.perf_counter()
            for _ in range(bulks):
                cursor.executemany(sql, [values] * BULK_SIZE)
                raw.commit()
            bulk = bulks * BULK_SIZE / (time.perf_counter() - started)
            cursor.close()
        finally:
            raw.close()
    return single, bulk


def insert_statement(mark: str) -> tuple[str, tuple[Any, ...]]:
    """A bare INSERT of one ready no-op row, for the DBAPI's parameter ``mark``."""
    now = utcnow().replace(tzinfo=None)
    columns = (
        "method, parametres, logs, status, created_at, run_at, priority, queue, attempts, "
        "max_attempts"
    )
    values = (NOOP, "{}", "[]", "TO_RUN", now, now, 0, "default", 0, 1)
    return f"INSERT INTO taches ({columns}) VALUES ({', '.join([mark] * len(values))})", values


# -- report -------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def report(figures: list[Figure], notes: list[str]) -> None:
    print()
    print(f"{'figure':<44}{'measured':>14}   {'limit (same run)':<34}{'ratio':>7}  target")
    for f in figures:
        value = f"{f.value:,.1f} {f.unit}"
        limit = f"{f.limit_name} {f.limit:,.1f} {f.unit}"
        print(f"{f.name:<44}{value:>14}   {limit:<34}{f.ratio:>7.2f}  {f.target}")
    if notes:
        print()
        for note in notes:
            print(note)


def run_database(
    label: str, url: str, args: argparse.Namespace, figures: list[Figure], notes: list[str]
) -> None:
    app = make_app(url)
    try:
        _run_parts(label, app, url, args, figures, notes)
    finally:
        with app.app_context():
            bench_app.db.session.remove()
            state = app.extensions["taches.state"]
            if state.store is not None:
                state.store.engine.dispose()
            bench_app.db.engine.dispose()


def _run_parts(
    label: str,
    app: Flask,
    url: str,
    args: argparse.Namespace,
    figures: list[Figure],
    notes: list[str],
) -> None:
    parts = set(args.only or PARTS)
    if "fork" in parts:
        _fork_drain(label, app, url, args, figures, notes)
    if "subprocess" in parts:
        _subprocess_drain(label, app, url, args, figures)
    if "pickup" in parts:
        _pickup(label, app, url, args, figures)
    if "add" in parts:
        _adds(label, app, args, figures)


def _fork_drain(
    label: str,
    app: Flask,
    url: str,
    args: argparse.Namespace,
    figures: list[Figure],
    notes: list[str],
) -> None:
    fork = fork_limit(url)
    print(f"[{label}] fork limit measured: {fork:.0f}/s", flush=True)
    result = drain(app, url, "fork", args.tasks, args.max)
    figures.append(
        Figure(
            f"drain, fork executor, {label}",
            result.rate,
            "/s",
            "bare fork+exit",
            fork,
            target=">= 250/s and >= 0.8 of the limit" if label == "SQLite" else "",
        )
    )
    cores = os.cpu_count() or 1
    notes.append(
        f"{label} fork drain: {result.cpu_ms:.1f} ms of CPU per task (manager + child), "
        f"{result.faults:.0f} page faults per task; on {cores} cores that CPU alone bounds "
        f"the drain at {cores * 1000 / result.cpu_ms:.0f} tasks/s"
    )
    print(f"[{label}] fork drain: {result.rate:.1f}/s (load {load()})", flush=True)


def _subprocess_drain(
    label: str, app: Flask, url: str, args: argparse.Namespace, figures: list[Figure]
) -> None:
    cold = cold_start_limit(url, args.max, args.subprocess_tasks)
    spawned = drain(app, url, "subprocess", args.subprocess_tasks, args.max)
    figures.append(
        Figure(
            f"drain, subprocess executor, {label}",
            spawned.rate,
            "/s",
            f"cold flask x{args.max}",
            cold,
        )
    )
    print(f"[{label}] subprocess drain: {spawned.rate:.1f}/s", flush=True)


def _pickup(
    label: str, app: Flask, url: str, args: argparse.Namespace, figures: list[Figure]
) -> None:
    floor = claim_floor(app)
    latencies = pickups(app, url, args.pickups, args.max)
    target = "< 50 ms" if label == "SQLite" else "< 20 ms"
    figures.append(
        Figure(
            f"add() -> RUNNING, median, {label}",
            statistics.median(latencies),
            "ms",
            "one claim",
            floor,
            higher_is_better=False,
            target=target,
        )
    )
    figures.append(
        Figure(
            f"add() -> RUNNING, p95, {label}",
            percentile(latencies, 0.95),
            "ms",
            "one claim",
            floor,
            higher_is_better=False,
        )
    )
    print(f"[{label}] pickup median {statistics.median(latencies):.1f} ms", flush=True)


def _adds(label: str, app: Flask, args: argparse.Namespace, figures: list[Figure]) -> None:
    single, bulk = add_rates(app, args.adds)
    raw_single, raw_bulk = insert_limits(app, args.adds)
    figures.append(
        Figure(
            f"add(), one task per call, {label}",
            single,
            "/s",
            "DBAPI INSERT+COMMIT",
            raw_single,
            target=">= 5,500/s (Huey)",
        )
    )
    figures.append(
        Figure(
            f"add_many(), {BULK_SIZE} per call, {label}",
            bulk,
            "/s",
            "DBAPI executemany",
            raw_bulk,
            target=">= 5,500/s (Huey)",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="no-op tasks per fork drain")
    parser.add_argument(
        "--subprocess-tasks", type=int, default=24, help="tasks per subprocess drain"
    )
    parser.add_argument("--max", type=int, default=8, help="--max of the managers")
    parser.add_argument("--pickups", type=int, default=60, help="add() -> RUNNING samples")
    parser.add_argument("--adds", type=int, default=3000, help="add() calls timed")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeat for several); default: all",
    )
    parser.add_argument("--fork-limit-of", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fork_limit_of:
        print(measure_forks(args.fork_limit_of))
        return
    print(
        f"flask-taches benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average before: {load()}",
        flush=True,
    )
    figures: list[Figure] = []
    notes: list[str] = []
    with sqlite_database() as url:
        run_database("SQLite", url, args, figures, notes)
    if not args.no_postgres:
        with postgres_database() as url:
            run_database("PostgreSQL", url, args, figures, notes)
    report(figures, notes)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
