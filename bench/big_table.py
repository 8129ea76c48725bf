"""Costs that must not grow with the table: an empty table beside 1,000,000 finished rows.

    .venv/bin/python bench/big_table.py [--rows 1000000] [--tasks 300] [--no-postgres] [--no-sqlite]
        [--web-only]

For SQLite and PostgreSQL: the drain rate of the fork executor and the
add() -> RUNNING latency of an idle manager, on an empty table, then on the
same table once it holds ``--rows`` finished rows (built in one INSERT ...
SELECT from a generated series: seconds, not hours), and the dashboard's first
page and a 200-id status batch (the app's own routes, through Flask's test
client, medians). Targets: drain and pickup within 10 % of the empty table;
dashboard under 50 ms, batch under 20 ms. ``--web-only`` measures only the
pages (no drain, no pickups): a minute instead of several.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import delete, func, select, text, update  # noqa: E402

from bench import run as single  # noqa: E402
from flask_taches import Status, Tache  # noqa: E402
from flask_taches.clock import utcnow  # noqa: E402
from flask_taches.models import taches_table  # noqa: E402
from flask_taches.web import fragments  # noqa: E402

T = taches_table.c
REQUESTS = 30  # dashboard and batch requests timed
BATCH = 200  # ids in one status batch
_floor = 0  # the largest id of the finished rows: the bench's own rows come after


def reset_new() -> None:
    """Delete the benchmark's own rows, never the finished ones built for it."""
    with single.bench_app.taches.store().write() as conn:
        conn.execute(delete(taches_table).where(T.id > _floor))


def build(app: Flask, rows: int) -> float:
    """``rows`` COMPLETED rows in one INSERT ... SELECT; seconds it took."""
    global _floor
    with app.app_context():
        template = single.bench_app.taches.add(single.NOOP, parametres={"n": 1})
        single.bench_app.db.session.remove()
        columns = [c.name for c in taches_table.c if c.name != "id" and c.computed is None]
        dialect = single.bench_app.db.engine.dialect.name
        if dialect == "postgresql":
            series = f"generate_series(1, {rows}) AS s(n)"
            ago = "t.{} - s.n * interval '1 second'"
        else:
            series = (
                f"(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g "
                f"WHERE n < {rows}) SELECT n FROM g) AS s"
            )
            ago = "datetime(t.{}, '-' || s.n || ' seconds')"
        changed = {
            "status": f"'{Status.COMPLETED.value}'",
            "attempts": "1",
            "created_at": ago.format("created_at"),
            "run_at": ago.format("created_at"),
            "started_at": ago.format("created_at"),
            "ended_at": ago.format("created_at"),
        }
        selected = [changed.get(c, f"t.{c}") for c in columns]
        sql = (
            f"INSERT INTO taches ({', '.join(columns)}) SELECT {', '.join(selected)} "
            f"FROM taches t CROSS JOIN {series} WHERE t.id = {template}"
        )
        started = time.perf_counter()
        with single.bench_app.taches.store().write() as conn:
            conn.execute(text(sql))
            conn.execute(delete(taches_table).where(T.id == template))
        if dialect == "postgresql":
            # Outside a transaction: one that is rolled back takes its statistics with it,
            # and the planner would guess as for an empty table (autovacuum would not).
            engine = single.bench_app.db.engine.execution_options(isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text("ANALYZE taches"))
        took = time.perf_counter() - started
        with single.bench_app.taches.store().read() as conn:
            _floor = int(conn.execute(select(func.max(T.id))).scalar_one())
    return took


def drain(app: Flask, url: str, tasks: int) -> float:
    with app.app_context():
        reset_new()
        single.bench_app.taches.add_many(Tache(method=single.NOOP) for _ in range(tasks))
        single.bench_app.db.session.remove()
        store = single.bench_app.taches.store

        def done() -> bool:
            with store().read() as conn:
                query = select(func.count()).where(
                    (T.id > _floor) & (T.status == Status.COMPLETED.value)
                )
                return int(conn.execute(query).scalar_one()) == tasks

        with single.manager(url):
            single.wait_until(f"{tasks} tasks drained", done)
        with store().read() as conn:
            first, last = conn.execute(
                select(func.min(T.started_at), func.max(T.ended_at)).where(T.id > _floor)
            ).one()
    return tasks / (last - first).total_seconds()


def finished_rows(app: Flask, tasks: int) -> None:
    """``tasks`` new rows, made COMPLETED without a manager (``--web-only``)."""
    with app.app_context():
        reset_new()
        single.bench_app.taches.add_many(Tache(method=single.NOOP) for _ in range(tasks))
        single.bench_app.db.session.remove()
        now = utcnow()
        done = {"status": Status.COMPLETED.value, "attempts": 1, "started_at": now}
        with single.bench_app.taches.store().write() as conn:
            conn.execute(update(taches_table).where(T.id > _floor).values(ended_at=now, **done))


def web_timings(app: Flask) -> dict[str, float]:
    """Median ms (wall and this process's CPU) of the dashboard's first page and a 200-id batch.

    The batch twice: asked again (its finished tasks' fragments kept from the
    first look) and at a first look (the kept renders dropped before each).
    """
    app.config["SECRET_KEY"] = "bench"
    client = app.test_client()
    with app.app_context(), single.bench_app.taches.store().read() as conn:
        top = int(conn.execute(select(func.max(T.id))).scalar_one())
    step = max(1, top // BATCH)
    ids = ",".join(str(i) for i in range(1, top + 1, step)[:BATCH])
    kept = fragments.kept_renders(app)
    found: dict[str, float] = {}
    for name, path, fresh in (
        ("dashboard", "/taches/", False),
        ("batch", f"/taches/status?ids={ids}", False),
        ("batch, first look", f"/taches/status?ids={ids}", True),
    ):
        wall, cpu = [], []
        for _ in range(REQUESTS + 2):
            if fresh:
                kept.clear()
            started, used = time.perf_counter(), time.process_time()
            answer = client.get(path)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"{path[:40]}: HTTP {answer.status_code}")
        found[name] = statistics.median(wall[2:])  # the first ones compile templates
        found[f"{name} CPU"] = statistics.median(cpu[2:])
    return found


def measure(label: str, app: Flask, url: str, args: argparse.Namespace) -> dict[str, float]:
    single.reset = reset_new  # pickups() resets: never the finished rows
    figures: dict[str, float] = {}
    if not args.web_only:
        rate = drain(app, url, args.tasks)
        latencies = single.pickups(app, url, args.pickups, 8)
        figures = {
            "drain": rate,
            "pickup p50": statistics.median(latencies),
            "pickup p95": single.percentile(latencies, 0.95),
        }
    else:
        finished_rows(app, args.tasks)  # what a drain would leave for the pages to show
    figures.update(web_timings(app))
    print(f"  [{label}] " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()), flush=True)
    return figures


def run_database(label: str, url: str, args: argparse.Namespace) -> None:
    global _floor
    _floor = 0
    app = single.make_app(url)
    try:
        empty = measure(f"{label}, empty", app, url, args)
        took = build(app, args.rows)
        print(f"  [{label}] {args.rows:,} finished rows built in {took:.1f} s", flush=True)
        full = measure(f"{label}, {args.rows:,} rows", app, url, args)
    finally:
        with app.app_context():
            single.bench_app.db.session.remove()
            single.bench_app.db.engine.dispose()
    print(f"\n{label}: empty table vs {args.rows:,} finished rows")
    if not args.web_only:
        for key, target in (("drain", "within 10 %"), ("pickup p50", "within 10 %")):
            ratio = full[key] / empty[key]
            print(f"  {key:<12} {empty[key]:8.1f} -> {full[key]:8.1f}   x{ratio:.2f}  ({target})")
        print(f"  pickup p95   {empty['pickup p95']:8.1f} -> {full['pickup p95']:8.1f}")
    for page, limit in (("dashboard", 50), ("batch", 20), ("batch, first look", 20)):
        print(
            f"  {page:<17} {empty[page]:7.1f} -> {full[page]:7.1f} ms"
            f" (CPU {empty[page + ' CPU']:.1f} -> {full[page + ' CPU']:.1f})"
            f"   (target < {limit} ms)"
        )
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=300, help="tasks per drain")
    parser.add_argument("--pickups", type=int, default=30)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--web-only", action="store_true", help="only the dashboard and batch")
    args = parser.parse_args()
    print(f"big table; load average before: {single.load()}", flush=True)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="taches-big-") as folder:
            run_database("SQLite", f"sqlite:///{folder}/big.sqlite", args)
    if not args.no_postgres:
        with single.postgres_database() as url:
            run_database("PostgreSQL", url, args)
    print(f"load average after: {single.load()}")


if __name__ == "__main__":
    main()
