"""The live pages' routes on a big table: the batch for 200 ids, the dashboard, its new rows.

    .venv/bin/python bench/web_pages.py [--rows 1000000] [--ids 200] [--repeat 20]
                                        [--no-postgres]

Fills a fresh ``taches`` table with ``--rows`` tasks in one server-side
``INSERT ... SELECT`` (SQLite: a recursive CTE; PostgreSQL: ``generate_series``),
a mix of statuses, queues, signatures and end times (one a second, back in time),
then times, through the test client (routing, SQL, rendering, JSON):

* the batch ``POST <prefix>/status`` for ``--ids`` ids spread over the table (what
  a page of 200 live elements asks each tick), and for 200 signatures;
* the dashboard ``GET <prefix>/`` (its page of rows, counts per status and
  queue, the last hour's chart, the bulk buttons' counts);
* the dashboard's tick for new rows (``"newer"`` in the batch).

Prints the median and the 90th percentile of ``--repeat`` runs of each.
Timings depend on the machine: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench import app as bench_app  # noqa: E402
from bench import run as single  # noqa: E402

#: The generated row ``x`` (1..N): its status, queue, signature, end time, log.
STATUS_OF_X = (
    "CASE x % 10 WHEN 6 THEN 'FAILED' WHEN 7 THEN 'TO_RUN' WHEN 8 THEN 'CANCELLED' "
    "WHEN 9 THEN 'INTERRUPTED' ELSE 'COMPLETED' END"
)
COLUMNS = (
    "method, parametres, status, logs, created_at, started_at, ended_at, priority, queue, "
    "attempts, max_attempts, restart_base, signature"
)
#: Seconds before now row ``x`` ended: one a second, newest first, over 30 days.
SPREAD = "x % 2592000"
LOG = '[{"level": "error", "message": "bench failure", "at": "2026-01-01T00:00:00"}]'


def fill_sql(dialect: str, rows: int) -> str:
    """One INSERT ... SELECT generating ``rows`` tasks on the server."""
    if dialect == "sqlite":
        at = f"strftime('%Y-%m-%d %H:%M:%S.000000', 'now', '-' || ({SPREAD}) || ' seconds')"
        source = (
            f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {rows}) "
            "SELECT"
        )
        tail = "FROM g"
        signature = "'sig-' || (x % 1000)"
        queue = "'q' || (x % 5)"
    else:
        at = f"(now() at time zone 'utc') - make_interval(secs => {SPREAD})"
        source = "SELECT"
        tail = f"FROM generate_series(1, {rows}) AS g(x)"
        signature = "'sig-' || (x % 1000)"
        queue = "'q' || (x % 5)"
    ended = f"CASE WHEN x % 10 = 7 THEN NULL ELSE {at} END"
    logs = f"CASE WHEN x % 10 = 6 THEN '{LOG}' ELSE '[]' END"
    json_cast = "" if dialect == "sqlite" else "::json"
    return (
        f"INSERT INTO taches ({COLUMNS}) {source} 'bench:noop', '{{}}'{json_cast}, "
        f"{STATUS_OF_X}, ({logs}){json_cast}, {at}, {at}, {ended}, 0, {queue}, 1, 1, 0, "
        f"{signature} {tail}"
    )


def fill(app: Flask, rows: int) -> float:
    """Insert the rows; the seconds it took."""
    with app.app_context():
        engine = bench_app.db.engine
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(fill_sql(engine.dialect.name, rows)))
        with engine.begin() as conn:
            conn.execute(text("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE taches"))
        return time.perf_counter() - started


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and 90th percentile of ``repeat`` runs, in milliseconds (after one warm-up)."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def measure(app: Flask, rows: int, ids: int, repeat: int) -> list[tuple[str, float, float]]:
    client = app.test_client()
    rng = random.Random(1)

    def batch(body: dict[str, Any]) -> None:
        response = client.post("/taches/status", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)[:200]

    def by_ids() -> None:
        batch({"ids": rng.sample(range(1, rows + 1), ids)})

    def by_signatures() -> None:
        batch({"signatures": [f"sig-{i}" for i in rng.sample(range(1000), min(ids, 1000))]})

    def dashboard() -> None:
        assert client.get("/taches/").status_code == 200

    def dashboard_filtered() -> None:
        assert client.get("/taches/?status=FAILED&queue=q1").status_code == 200

    def newer() -> None:
        batch({"newer": {"after": rows - 10, "query": "queue=q1"}})

    return [
        (f"batch, {ids} ids", *timed(by_ids, repeat)),
        (f"batch, {min(ids, 1000)} signatures", *timed(by_signatures, repeat)),
        ("dashboard, no filter", *timed(dashboard, repeat)),
        ("dashboard, status+queue filter", *timed(dashboard_filtered, repeat)),
        ("dashboard tick for new rows", *timed(newer, repeat)),
    ]


def bench(label: str, url: str, args: argparse.Namespace) -> None:
    app = single.make_app(url)
    app.secret_key = "bench"  # the pages sign CSRF tokens
    app.config["TACHES_IS_ADMIN"] = lambda: True  # the dashboard as an admin sees it: all of it
    seconds = fill(app, args.rows)
    print(f"{label}: {args.rows:,} rows inserted in {seconds:.1f} s", flush=True)
    for name, median, p90 in measure(app, args.rows, args.ids, args.repeat):
        print(f"  {name:<34} median {median:8.1f} ms   p90 {p90:8.1f} ms", flush=True)
    with app.app_context():
        bench_app.db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ids", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {single.load()}")
    with tempfile.TemporaryDirectory(prefix="taches-web-") as folder:
        bench("SQLite", f"sqlite:///{os.path.join(folder, 'web.sqlite')}", args)
    if not args.no_postgres:
        with single.postgres_database() as url:
            bench("PostgreSQL", url, args)
    print(f"load average after: {single.load()}")


if __name__ == "__main__":
    main()
