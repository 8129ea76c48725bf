"""Huey's SQLite instance and no-op task (its defaults: WAL, synchronous FULL)."""

from __future__ import annotations

import os

from huey import SqliteHuey

from bench.peers.report import report

huey = SqliteHuey("bench", filename=os.environ.get("BENCH_HUEY_FILE", "huey-bench.sqlite"))


@huey.task()
def noop(key: str, port: int) -> None:
    report(key, port)
