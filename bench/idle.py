"""What an idle manager costs: its CPU time over some seconds, on each database.

    .venv/bin/python bench/idle.py [--seconds 30] [--pickups 30] [--no-postgres] [--no-mysql]

A real ``flask taches start --forever`` with its default settings and nothing
to do: after it settled, its CPU time (user + system, from /proc) over
``--seconds`` is printed as a share of one core. Target: under 0.2 %.

What idling must not cost is pickup latency: with ``--pickups N``, N tasks are
added one at a time to an idle manager, and the time from add() returning to
the row's RUNNING is printed (median and 95th percentile).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench import run as single  # noqa: E402

SETTLE = 60.0  # seconds a manager may take to boot (imports, warm-up) before it is idle
BOOTED = 0.05  # share of a core under which a second of the manager's life counts as idle
MYSQL_ADMIN_URL = os.environ.get("BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def cpu_seconds(pid: int) -> float:
    text_ = Path(f"/proc/{pid}/stat").read_text()
    fields = text_[text_.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def mysql_database() -> Iterator[str]:
    admin = create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"taches_idle_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        yield str(admin.url.set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def idle_share(url: str, seconds: float) -> float:
    """The share of one core an idle manager used over ``seconds`` (after it settled)."""
    app = single.make_app(url)
    with app.app_context():
        single.bench_app.db.engine.dispose()
    with single.manager(url) as process:
        _wait_booted(process.pid)
        before, started = cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        used = cpu_seconds(process.pid) - before
        return used / (time.monotonic() - started)


def pickup_ms(url: str, samples: int) -> tuple[float, float]:
    """Median and 95th percentile of add() -> RUNNING, in milliseconds, with an idle manager."""
    app = single.make_app(url)
    latencies = single.pickups(app, url, samples, max_running=8)
    with app.app_context():
        single.bench_app.db.engine.dispose()
    return single.percentile(latencies, 0.5), single.percentile(latencies, 0.95)


def measure(url: str, args: argparse.Namespace) -> str:
    share = idle_share(url, args.seconds)
    line = f"{share * 100:6.3f} % of a core   (target < 0.2 %)"
    if args.pickups:
        p50, p95 = pickup_ms(url, args.pickups)
        line += f"   pickup p50 {p50:6.1f} ms, p95 {p95:6.1f} ms"
    return line


def _wait_booted(pid: int) -> None:
    """Wait until the manager's boot is over (on a loaded machine it takes seconds)."""
    deadline = time.monotonic() + SETTLE
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - last < BOOTED:
            return
        last = now
    raise SystemExit(f"the manager was still busy after {SETTLE:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pickups", type=int, default=0, help="add() -> RUNNING samples")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-mysql", action="store_true")
    args = parser.parse_args()
    print(f"idle manager, {args.seconds:g} s each; load average before: {single.load()}")
    databases: list[tuple[str, object]] = [("SQLite", None)]
    if not args.no_postgres:
        databases.append(("PostgreSQL", single.postgres_database))
    if not args.no_mysql:
        databases.append(("MariaDB", mysql_database))
    for label, make in databases:
        if make is None:
            with tempfile.TemporaryDirectory(prefix="taches-idle-") as folder:
                line = measure(f"sqlite:///{folder}/idle.sqlite", args)
        else:
            with make() as url:  # type: ignore[operator]
                line = measure(url, args)
        print(f"{label:<12} {line}", flush=True)
    print(f"load average after: {single.load()}")


if __name__ == "__main__":
    main()
