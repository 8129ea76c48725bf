"""flask-taches beside its peers, in one run on this machine, with the machine's limits.

    .venv/bin/python bench/side_by_side.py [--quick] [--repeats 3] [--tasks 1000]

The peers (RQ's default and simple workers, Celery's prefork pool by default
and with max-tasks-per-child=1, Huey's SqliteHuey, Procrastinate) are
installed in a virtualenv of the benchmark's own, ``bench/.peers-venv``
(made on first use; never the project's dependencies), and run against the
local Redis (127.0.0.1:6379, databases 13 and 14, flushed) and PostgreSQL
(a database of the run's own). Every system runs the same no-op task, whose
first line sends its key and time to this process (:mod:`bench.peers.report`).

For each system, interleaved with the others and repeated (medians shown):

* enqueue/s: ``--enqueues`` single calls, as an application makes them;
* drain/s at concurrency 2 and 4: ``--tasks`` tasks enqueued first, then the
  worker started; from the first task's first line to the last one's;
* latency p50/p95: idle workers at concurrency 2, from the enqueue call to the
  task's first line, after a random pause;
* CPU ms/task: the worker's whole process tree (children included) between
  the first and the last task of the c=2 drain. The servers' own CPU (Redis,
  PostgreSQL) is not in it.

The limits are measured in the same run: a bare fork + _exit + waitpid of a
process as warm as a manager, SQLite INSERT + COMMIT (WAL) at synchronous FULL
and NORMAL, PostgreSQL INSERT + COMMIT. The load average is printed: on a
shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as single  # noqa: E402

PEERS_VENV = ROOT / "bench" / ".peers-venv"
PEERS = ["rq", "celery", "redis", "huey", "procrastinate", "psycopg[binary]"]
REDIS = ("127.0.0.1", 6379)
DRAIN_DEADLINE = 300.0  # seconds a drain may take; a slower one is reported as incomplete
STOP_WAIT = 30.0  # seconds a worker gets to exit after SIGTERM
LIMIT_CALLS = 2000  # INSERT + COMMIT timed for each database limit


# -- the peers' virtualenv ------------------------------------------------------------------


def peers_python() -> Path:
    """The benchmark's own virtualenv with the peers installed (made or updated here)."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "installed.txt"
    wanted = "\n".join(PEERS)
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"installing the peers into {PEERS_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEERS], check=True)
    stamp.write_text(wanted)
    return python


def redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# -- what the tasks report ------------------------------------------------------------------


class Reports:
    """The tasks' datagrams: key -> time of the task's first line."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.prefix = ""
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            key, started = self.sock.recv(256).decode().split()
            with self.lock:
                if key.startswith(self.prefix):
                    self.seen.setdefault(key, float(started))

    def expect(self, prefix: str) -> None:
        with self.lock:
            self.prefix, self.seen = prefix, {}

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def span(self) -> tuple[float, float]:
        with self.lock:
            return min(self.seen.values()), max(self.seen.values())


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of the processes ``roots`` and all their descendants, reaped ones included."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(value) for value in fields[11:15])  # utime..cstime
    wanted = set(roots)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in wanted} - wanted
        wanted |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in wanted) / os.sysconf("SC_CLK_TCK")


# -- the systems ----------------------------------------------------------------------------


@dataclass
class System:
    name: str
    client: str  # the system's name for bench.peers.client
    python: str
    env: dict[str, str]
    worker: Callable[[int], list[list[str]]]  # concurrency -> the commands to start
    drain_share: float = 1.0  # of --tasks: the slowest drain fewer
    results: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def run_client(self, *args: str) -> dict[str, object]:
        done = subprocess.run(
            [self.python, "-m", "bench.peers.client", self.client, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name} client {args[0]} failed:\n{done.stderr[-2000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    @contextmanager
    def running(self, concurrency: int, log: Path) -> Iterator[list[int]]:
        processes = []
        with open(log, "ab") as out:
            for command in self.worker(concurrency):
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=ROOT,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        try:
            yield [process.pid for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(STOP_WAIT)
                except subprocess.TimeoutExpired:
                    print(f"  {self.name}: worker {process.pid} ignored SIGTERM", flush=True)
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its group: what it left running
                process.wait()


def taches_system(name: str, url: str, executor: str) -> System:
    def worker(concurrency: int) -> list[list[str]]:
        start = ["taches", "start", "--forever", "--max", str(concurrency)]
        return [single.flask_command(*start, "--executor", executor)]

    return System(name, "taches", sys.executable, single.child_env(url), worker)


def peer_systems(python: Path, folder: str, procrastinate_dsn: str) -> list[System]:
    bin_dir = python.parent
    env = {
        **single.child_env("unused://"),
        "BENCH_HUEY_FILE": os.path.join(folder, "huey.sqlite"),
        "BENCH_PROCRASTINATE_DSN": procrastinate_dsn,
    }
    py = str(python)

    def rq(worker_class: str) -> Callable[[int], list[list[str]]]:
        command = [str(bin_dir / "rq"), "worker", "-q", "-u", "redis://127.0.0.1:6379/13"]
        return lambda c: [[*command, "-w", worker_class, "-P", str(ROOT), "bench"]] * c

    def celery(*extra: str) -> Callable[[int], list[list[str]]]:
        command = [str(bin_dir / "celery"), "-A", "bench.peers.celery_tasks", "worker"]
        quiet = ["-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        return lambda c: [[*command, "-P", "prefork", "-c", str(c), *quiet, *extra]]

    def huey(concurrency: int) -> list[list[str]]:
        # Polls every 50 ms (its default backs off to 10 s, which no latency would survive).
        consumer = [str(bin_dir / "huey_consumer"), "bench.peers.huey_tasks.huey"]
        return [[*consumer, "-w", str(concurrency), "-k", "process", "-d", "0.05", "-m", "0.05"]]

    def procrastinate(concurrency: int) -> list[list[str]]:
        app = ["--app", "bench.peers.procrastinate_tasks.app"]
        return [[str(bin_dir / "procrastinate"), *app, "worker", "-c", str(concurrency)]]

    return [
        System("RQ default Worker (fork per job)", "rq", py, env, rq("rq.worker.Worker")),
        System("RQ SimpleWorker (in-process)", "rq", py, env, rq("rq.worker.SimpleWorker")),
        System(
            "Celery prefork, max-tasks-per-child=1",
            "celery",
            py,
            env,
            celery("--max-tasks-per-child", "1"),
            drain_share=0.3,
        ),
        System("Celery prefork (long-lived pool)", "celery", py, env, celery()),
        System("Procrastinate (PostgreSQL, in-process)", "procrastinate", py, env, procrastinate),
        System("Huey SqliteHuey (long-lived processes)", "huey", py, env, huey),
    ]


def has_pool_executor() -> bool:
    helped = subprocess.run(
        single.flask_command("taches", "start", "--help"),
        cwd=ROOT,
        # A file URL: flask-taches refuses in-memory SQLite (nothing is created for --help).
        env=single.child_env(f"sqlite:///{tempfile.gettempdir()}/taches-help.sqlite"),
        capture_output=True,
        text=True,
    )
    return "pool" in helped.stdout


# -- one system's figures -------------------------------------------------------------------


def measure(system: System, args: argparse.Namespace, reports: Reports, log: Path) -> None:
    system.run_client("purge")
    rate = system.run_client("fill", str(args.enqueues), "0", "enqueue")["rate"]
    system.results["enqueue"].append(float(rate))  # type: ignore[arg-type]
    for concurrency in (2, 4):
        system.run_client("purge")
        tasks = max(10, int(args.tasks * system.drain_share))
        prefix = f"drain-{concurrency}-{random.randrange(10**9)}"
        system.run_client("fill", str(tasks), str(reports.port), prefix)
        reports.expect(prefix)
        system.results["load"].append(os.getloadavg()[0])
        with system.running(concurrency, log) as pids:
            drained, cpu = _drain(reports, pids, tasks)
        system.results[f"drain{concurrency}"].append(drained)
        if concurrency == 2:
            system.results["cpu_ms"].append(cpu)
    system.run_client("purge")
    with system.running(2, log):
        found = system.run_client("latency", str(args.latencies), "3")["latencies_ms"]
    latencies = sorted(float(v) for v in found)  # type: ignore[attr-defined]
    system.results["p50"].append(statistics.median(latencies))
    system.results["p95"].append(single.percentile(latencies, 0.95))
    system.run_client("purge")
    print(f"  {system.name}: {summary(system)} (load {single.load()})", flush=True)


def _drain(reports: Reports, pids: list[int], tasks: int) -> tuple[float, float]:
    """Tasks per second from the first task's first line to the last's; CPU ms per task."""
    deadline = time.monotonic() + DRAIN_DEADLINE
    while reports.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    cpu_first = tree_cpu(pids)
    while reports.count() < tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    cpu_last = tree_cpu(pids)
    done = reports.count()
    if done < 2:
        return 0.0, float("nan")
    first, last = reports.span()
    if done < tasks:
        print(f"  incomplete drain: {done} of {tasks} in {DRAIN_DEADLINE:g} s", flush=True)
    return (done - 1) / (last - first), (cpu_last - cpu_first) * 1000 / (done - 1)


def summary(system: System) -> str:
    r = {key: statistics.median(values) for key, values in system.results.items() if values}
    if "p95" not in r:
        return "no figures"
    return (
        f"{r['enqueue']:,.0f} | {r['drain2']:,.0f} | {r['drain4']:,.0f} | "
        f"{r['p50']:.1f} / {r['p95']:.1f} | {r['cpu_ms']:.1f}"
    )


# -- the limits -----------------------------------------------------------------------------


def sqlite_insert_limit(path: str, synchronous: str, calls: int) -> float:
    """INSERT + COMMIT per second on a WAL SQLite file, through the bare sqlite3 module."""
    sql, values = single.insert_statement("?")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        started = time.perf_counter()
        for _ in range(calls):
            conn.execute("BEGIN")
            conn.execute(sql, values)
            conn.execute("COMMIT")
        rate = calls / (time.perf_counter() - started)
        conn.execute("DELETE FROM taches")
        return rate
    finally:
        conn.close()


def measure_limits(limits: dict[str, list[float]], sqlite_url: str, pg_url: str | None) -> None:
    limits["fork SQLite app"].append(single.fork_limit(sqlite_url))
    path = sqlite_url.removeprefix("sqlite:///")
    for mode in ("FULL", "NORMAL"):
        limits[f"SQLite INSERT+COMMIT {mode}"].append(sqlite_insert_limit(path, mode, LIMIT_CALLS))
    if pg_url is not None:
        limits["fork PostgreSQL app"].append(single.fork_limit(pg_url))
        app = single.make_app(pg_url)
        limits["PostgreSQL INSERT+COMMIT"].append(single.insert_limits(app, LIMIT_CALLS)[0])
        with app.app_context():
            single.bench_app.db.engine.dispose()


# -- the report -----------------------------------------------------------------------------


def print_table(systems: list[System], limits: dict[str, list[float]]) -> None:
    print()
    print(
        "| system (isolation) | enqueue/s | drain/s c=2 | drain/s c=4 "
        "| latency p50/p95 ms | CPU ms/task |"
    )
    print("|---|---|---|---|---|---|")
    for system in systems:
        print(f"| {system.name} | {summary(system)} |")
    print()
    print(
        "Limits in the same run: "
        + "; ".join(f"{name} {statistics.median(values):,.0f}/s" for name, values in limits.items())
    )


def print_targets(systems: list[System], limits: dict[str, list[float]]) -> None:
    by_name = {s.name: s for s in systems}

    def fig(name: str, key: str) -> float | None:
        system = by_name.get(name)
        values = system.results.get(key) if system else None
        return statistics.median(values) if values else None

    def ratio(label: str, mine: float | None, theirs: float | None, target: str) -> None:
        if mine is None or theirs is None or not theirs:
            return
        print(f"  {label:<58} {mine / theirs:5.2f}  (target {target})")

    def limit(name: str) -> float | None:
        return statistics.median(limits[name]) if limits.get(name) else None

    print("\nTargets (ratios of this run):")
    rq = "RQ default Worker (fork per job)"
    for db in ("SQLite", "PostgreSQL"):
        mine = f"flask-taches fork, {db}"
        goal = ">= 1.2" if db == "SQLite" else ">= 1.0"
        for c in (2, 4):
            ratio(
                f"fork drain c={c} / RQ default, {db}",
                fig(mine, f"drain{c}"),
                fig(rq, f"drain{c}"),
                goal,
            )
        ratio(
            f"RQ latency p50 / fork latency p50, {db}", fig(rq, "p50"), fig(mine, "p50"), ">= 1.0"
        )
    pool_pg, pool_sqlite = "flask-taches pool, PostgreSQL", "flask-taches pool, SQLite"
    peers = [
        (pool_pg, "Celery prefork (long-lived pool)", ">= 1.0"),
        (pool_pg, "Procrastinate (PostgreSQL, in-process)", ">= 1.0"),
        (pool_sqlite, "Huey SqliteHuey (long-lived processes)", ">= 0.5"),
    ]
    for c in (2, 4):
        for mine, peer, goal in peers:
            label = f"{mine.removeprefix('flask-taches ')} drain c={c} / {peer.split(' (')[0]}"
            ratio(label, fig(mine, f"drain{c}"), fig(peer, f"drain{c}"), goal)
    sqlite_add, pg_add = (
        fig("flask-taches fork, SQLite", "enqueue"),
        fig("flask-taches fork, PostgreSQL", "enqueue"),
    )
    huey = fig("Huey SqliteHuey (long-lived processes)", "enqueue")
    ratio("add() / Huey enqueue, SQLite (both synchronous=FULL)", sqlite_add, huey, ">= 1.0")
    ratio(
        "add() / bare INSERT+COMMIT, PostgreSQL",
        pg_add,
        limit("PostgreSQL INSERT+COMMIT"),
        ">= 0.8",
    )
    ratio(
        "add() / bare INSERT+COMMIT FULL, SQLite",
        sqlite_add,
        limit("SQLite INSERT+COMMIT FULL"),
        "(none)",
    )


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes: small counts, once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per drain")
    parser.add_argument("--enqueues", type=int, default=2000, help="single enqueue calls")
    parser.add_argument("--latencies", type=int, default=50, help="pickups timed per repeat")
    parser.add_argument("--only", action="append", help="systems whose name contains this")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.tasks, args.enqueues, args.latencies = 1, 200, 500, 20
    if not redis_answers():
        raise SystemExit("side-by-side: no Redis on 127.0.0.1:6379 (the peers need it)")
    python = peers_python()
    print(
        f"side by side: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average before: {single.load()}",
        flush=True,
    )
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="taches-side-"))
        sqlite_url = f"sqlite:///{folder}/taches.sqlite"
        pg_url = stack.enter_context(single.postgres_database())
        peers_url = stack.enter_context(single.postgres_database())
        for url in (sqlite_url, pg_url):
            app = single.make_app(url)
            with app.app_context():
                single.bench_app.db.engine.dispose()
        executors = ["fork", "pool"] if has_pool_executor() else ["fork"]
        systems = [
            taches_system(f"flask-taches {executor}, {label}", url, executor)
            for executor in executors
            for label, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url))
        ]
        dsn = peers_url.replace("postgresql+psycopg://", "postgresql://")
        systems += peer_systems(python, folder, dsn)
        if args.only:
            systems = [s for s in systems if any(o.lower() in s.name.lower() for o in args.only)]
        reports = Reports()
        limits: dict[str, list[float]] = defaultdict(list)
        log = Path(folder) / "workers.log"
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1} of {args.repeats}", flush=True)
            measure_limits(limits, sqlite_url, pg_url)
            shift = repeat % len(systems)
            for system in systems[shift:] + systems[:shift]:
                try:
                    measure(system, args, reports, log)
                except Exception as exc:  # one system's failure leaves the others' figures
                    print(f"  {system.name}: failed: {exc}", flush=True)
            print(f"\nAfter {repeat + 1} repeat(s), medians (load {single.load()}):")
            print_table(systems, limits)
            print_targets(systems, limits)
    loads = [value for s in systems for value in s.results.get("load", [])]
    if loads:
        print(f"\n1-minute load during the drains: {min(loads):.2f} to {max(loads):.2f}")
    print(f"load average after: {single.load()} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
