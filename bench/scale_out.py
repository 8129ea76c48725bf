"""Scale-out on one PostgreSQL: 4 managers of 2 slots each beside 1 manager of 8.

    .venv/bin/python bench/scale_out.py [--tasks 600] [--repeats 3] [--global-2]

The same no-op tasks drained from one PostgreSQL database, interleaved, medians
of the repeats; the rate runs from the first task's start to the last one's
end. Both shapes have 8 slots under the same global ``--max 8``: one manager
with all 8, or 4 managers with ``--concurrency 2`` each. Target: 4 x 2 drains
at least 0.9 x what 1 x 8 drains (claims must not serialise on the claim lock).
``--global-2`` adds 4 managers with ``--max 2`` each, whose global limit lets
only 2 tasks run at once, all managers together.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from bench import run as single  # noqa: E402
from flask_taches import Status, Tache  # noqa: E402
from flask_taches.models import taches_table  # noqa: E402

SAMPLE_EVERY = 0.01  # seconds between two looks at pg_locks and the RUNNING count
# The server may serve other databases: only this one's locks are counted.
SAMPLE = text(
    "SELECT (SELECT count(*) FROM pg_locks JOIN pg_database d ON d.oid = database"
    "  WHERE locktype = 'advisory' AND NOT granted AND d.datname = current_database()),"
    " (SELECT count(*) FROM taches WHERE status = 'RUNNING')"
)
#: name: (managers, arguments of each)
SHAPES = {
    "1 x --max 8": (1, ("--max", "8")),
    "4 x --concurrency 2": (4, ("--max", "8", "--concurrency", "2")),
}
GLOBAL_2 = {"4 x --max 2": (4, ("--max", "2"))}


class Samples:
    """While a drain runs: how often a claim waits for the claim's advisory lock, and
    how many tasks are RUNNING."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.waiting: list[int] = []
        self.running: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.wait(SAMPLE_EVERY):
                waiting, running = conn.execute(SAMPLE).one()
                self.waiting.append(int(waiting))
                self.running.append(int(running))

    def __enter__(self) -> Samples:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def summary(self) -> str:
        if not self.waiting:
            return "no sample"
        waited = sum(1 for n in self.waiting if n) / len(self.waiting)
        busy = [n for n in self.running if n] or [0]
        return (
            f"a claim waited for the lock in {waited:.0%} of {len(self.waiting)} samples; "
            f"RUNNING {statistics.mean(busy):.1f} on average, {max(busy)} at most"
        )


def drain(app: Flask, url: str, tasks: int, managers: int, args: tuple[str, ...]) -> float:
    """Tasks per second from the first start to the last end, with ``managers`` managers."""
    bench_app = single.bench_app
    with app.app_context():
        single.reset()
        bench_app.taches.add_many(Tache(method=single.NOOP) for _ in range(tasks))
        bench_app.db.session.remove()
        with ExitStack() as stack:
            samples = stack.enter_context(Samples(url))
            for _ in range(managers):
                stack.enter_context(single.manager(url, *args))
            single.wait_until(
                f"{tasks} tasks drained", lambda: single.count(Status.COMPLETED) == tasks
            )
        print(f"    {samples.summary()}", flush=True)
        with bench_app.taches.store().read() as conn:
            first, last = conn.execute(
                select(func.min(taches_table.c.started_at), func.max(taches_table.c.ended_at))
            ).one()
    return tasks / (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--global-2", action="store_true", help="add 4 x --max 2")
    args = parser.parse_args()
    shapes = {**SHAPES, **(GLOBAL_2 if args.global_2 else {})}
    print(f"scale-out on PostgreSQL; load average before: {single.load()}", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in shapes}
    with single.postgres_database() as url:
        app = single.make_app(url)
        for repeat in range(args.repeats):
            order = list(shapes.items())
            for name, (managers, manager_args) in order if repeat % 2 == 0 else order[::-1]:
                rate = drain(app, url, args.tasks, managers, manager_args)
                rates[name].append(rate)
                print(f"  {name}: {rate:.1f} tasks/s (load {single.load()})", flush=True)
        with app.app_context():
            single.bench_app.db.engine.dispose()
    medians = {name: statistics.median(rates[name]) for name in shapes}
    one = medians["1 x --max 8"]
    print(f"\nmedians of {args.repeats}, {args.tasks} no-op tasks:")
    for name, rate in medians.items():
        print(f"  {name:22} {rate:6.1f} tasks/s   {rate / one:.2f} x 1 x --max 8")
    print("target: 4 x --concurrency 2 >= 0.9 x 1 x --max 8")
    print(f"load average after: {single.load()}")


if __name__ == "__main__":
    main()
