"""What each fast path of the store saves, beside the plain path, in one run.

    .venv/bin/python bench/fast_paths.py [--children 300] [--no-postgres]

Run from the repository root, by hand, on a quiet machine. For each database
(a SQLite file, a fresh PostgreSQL database) it forks children from a warm
process, as the fork executor does, each recording the COMPLETED end of a
claimed task, and prints the cost per child (wall time of fork + end +
reap, one child at a time, and the children's CPU):

* ``completion``: the raw-cursor COMPLETED statement (``store.fast``) against
  the plain locked path (``record_end`` with the fast path switched off);
* ``warm-up``: a parent that ran ``Store.warm_up()`` before forking against one
  that did not (each variant runs in a process of its own, so caches start
  cold);

and what the manager saves per task with its two other shortcuts:

* ``end hint``: reading a child's end from the row after it exits (what the
  shared-memory hint spares), per read;
* ``pid batching``: recording a child's pid in a transaction of its own (what
  writing it with the next claim spares), per write.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import app as bench_app  # noqa: E402
from bench.run import postgres_database, sqlite_database  # noqa: E402
from flask_taches import Status  # noqa: E402

NOOP = "bench.tasks:noop"
REPEATS = 3  # each variant is measured this many times, interleaved; medians are printed


def measure_children(url: str, variant: str, children: int) -> dict[str, float]:
    """In this process: fork ``children`` children that each record a COMPLETED end."""
    os.environ[bench_app.DATABASE_URL_VARIABLE] = url
    app = bench_app.create_app()
    with app.app_context():
        bench_app.db.create_all()
        taches = bench_app.taches
        store = taches.store()
        store.count_running()  # the store's first connection (SQLite: WAL on)
        if variant != "cold":
            store.warm_up()
        if variant == "plain":
            store.fast_completion.complete = lambda *args, **kwargs: False  # type: ignore[method-assign]
        taches.add_many([NOOP] * children)
        claimed = store.claim_batch(children, max_running=children, hostname="bench")
        store.before_fork()
        cpu_before = os.times()
        started = time.perf_counter()
        for task in claimed:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    store.forget_connections_after_fork()
                    ended = store.record_end(task.id, task.attempt, Status.COMPLETED, logs=[])
                    code = 0 if ended is Status.COMPLETED else 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"child for task {task.id} failed")
        elapsed = time.perf_counter() - started
        cpu_after = os.times()
    child_cpu = (cpu_after[2] + cpu_after[3]) - (cpu_before[2] + cpu_before[3])
    return {"wall_ms": elapsed / children * 1000, "child_cpu_ms": child_cpu / children * 1000}


def measure_manager_reads(url: str, samples: int) -> dict[str, float]:
    """The manager's per-task costs that its shortcuts avoid."""
    os.environ[bench_app.DATABASE_URL_VARIABLE] = url
    app = bench_app.create_app()
    with app.app_context():
        bench_app.db.create_all()
        store = bench_app.taches.store()
        store.count_running()
        bench_app.taches.add_many([NOOP] * samples)
        claimed = store.claim_batch(samples, max_running=samples, hostname="bench")
        started = time.perf_counter()
        for task in claimed:
            store.attempt_states([task.id])
        read = time.perf_counter() - started
        started = time.perf_counter()
        for task in claimed:
            store.record_pids({task.id: (task.attempt, 1)}, "bench")
        write = time.perf_counter() - started
    return {"row_read_ms": read / samples * 1000, "pid_write_ms": write / samples * 1000}


def in_subprocess(mode: str, url: str, variant: str, count: int) -> dict[str, float]:
    env = {**os.environ, bench_app.DATABASE_URL_VARIABLE: url, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure",
            mode,
            "--url",
            url,
            "--variant",
            variant,
            "--count",
            str(count),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def run_database(label: str, url_factory: object, children: int) -> list[str]:
    lines = []
    samples: dict[str, list[dict[str, float]]] = {"fast": [], "plain": [], "cold": []}
    for _ in range(REPEATS):  # interleaved, each on a fresh database
        for variant in samples:
            with url_factory() as url:  # type: ignore[operator]
                samples[variant].append(in_subprocess("children", url, variant, children))
    median = {
        variant: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for variant, runs in samples.items()
    }
    fast, plain, cold = median["fast"], median["plain"], median["cold"]
    lines.append(
        f"{label} completion: fast {fast['wall_ms']:.2f} ms/child (CPU {fast['child_cpu_ms']:.2f})"
        f", plain {plain['wall_ms']:.2f} ms/child (CPU {plain['child_cpu_ms']:.2f})"
        f": plain/fast {plain['wall_ms'] / fast['wall_ms']:.2f}x wall"
    )
    lines.append(
        f"{label} warm-up: warm {fast['wall_ms']:.2f} ms/child (CPU {fast['child_cpu_ms']:.2f})"
        f", cold {cold['wall_ms']:.2f} ms/child (CPU {cold['child_cpu_ms']:.2f})"
        f": cold/warm {cold['wall_ms'] / fast['wall_ms']:.2f}x wall"
    )
    with url_factory() as url:  # type: ignore[operator]
        reads = in_subprocess("manager", url, "", children)
    lines.append(
        f"{label} end hint spares a row read of {reads['row_read_ms']:.2f} ms per task; "
        f"pid batching spares a write of {reads['pid_write_ms']:.2f} ms per task"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=300)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--measure", choices=("children", "manager"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "children":
        print(json.dumps(measure_children(args.url, args.variant, args.count)))
        return
    if args.measure == "manager":
        print(json.dumps(measure_manager_reads(args.url, args.count)))
        return
    print(f"flask-taches fast paths: {os.cpu_count()} cores, load {os.getloadavg()}")
    lines = run_database("SQLite", sqlite_database, args.children)
    if not args.no_postgres:
        lines += run_database("PostgreSQL", postgres_database, args.children)
    print("\n".join(lines))
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
