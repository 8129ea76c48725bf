"""Scale-out on one PostgreSQL: 4 managers with --max 2 each beside 1 manager with --max 8.

    .venv/bin/python bench/scale_out.py [--tasks 600] [--repeats 3]

The same no-op tasks drained from one PostgreSQL database, interleaved, medians
of the repeats; the rate runs from the first task's start to the last one's
end. Target: 4 x 2 drains at least 0.9 x what 1 x 8 drains (claims must not
serialise on the claim lock).
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

SAMPLE_EVERY = 0.01  # seconds between two looks at pg_locks during a drain


class LockWaits:
    """Samples, while a drain runs, how many claims wait for the claim's advisory lock."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        with self.engine.connect() as conn:
            while not self._stop.wait(SAMPLE_EVERY):
                self.samples.append(int(conn.execute(query).scalar_one()))

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def summary(self) -> str:
        if not self.samples:
            return "no sample"
        waiting = sum(1 for n in self.samples if n) / len(self.samples)
        return f"a claim waited for the lock in {waiting:.0%} of {len(self.samples)} samples"


def drain(app: Flask, url: str, tasks: int, managers: int, max_each: int) -> float:
    """Tasks per second from the first start to the last end, with ``managers`` managers."""
    bench_app = single.bench_app
    with app.app_context():
        single.reset()
        bench_app.taches.add_many(Tache(method=single.NOOP) for _ in range(tasks))
        bench_app.db.session.remove()
        with ExitStack() as stack:
            waits = stack.enter_context(LockWaits(url))
            for _ in range(managers):
                stack.enter_context(single.manager(url, "--max", str(max_each)))
            single.wait_until(
                f"{tasks} tasks drained", lambda: single.count(Status.COMPLETED) == tasks
            )
        print(f"    {managers} x --max {max_each}: {waits.summary()}", flush=True)
        with bench_app.taches.store().read() as conn:
            first, last = conn.execute(
                select(func.min(taches_table.c.started_at), func.max(taches_table.c.ended_at))
            ).one()
    return tasks / (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"scale-out on PostgreSQL; load average before: {single.load()}", flush=True)
    rates: dict[str, list[float]] = {"1 x --max 8": [], "4 x --max 2": []}
    with single.postgres_database() as url:
        app = single.make_app(url)
        for repeat in range(args.repeats):
            shapes = [("1 x --max 8", 1, 8), ("4 x --max 2", 4, 2)]
            for name, managers, max_each in shapes if repeat % 2 == 0 else shapes[::-1]:
                rate = drain(app, url, args.tasks, managers, max_each)
                rates[name].append(rate)
                print(f"  {name}: {rate:.1f} tasks/s (load {single.load()})", flush=True)
        with app.app_context():
            single.bench_app.db.engine.dispose()
    one, four = (statistics.median(rates[name]) for name in rates)
    print(f"\n1 manager  --max 8: {one:.1f} tasks/s (median of {args.repeats})")
    print(f"4 managers --max 2: {four:.1f} tasks/s")
    print(f"ratio 4x2 / 1x8: {four / one:.2f}   (target >= 0.9)")
    print(f"load average after: {single.load()}")


if __name__ == "__main__":
    main()
