"""Procrastinate's app and no-op task on PostgreSQL (its worker runs tasks in-process)."""

from __future__ import annotations

import os

import procrastinate

from bench.peers.report import report

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_PROCRASTINATE_DSN", ""))
)


@app.task(name="bench.noop")
async def noop(key: str, port: int) -> None:
    report(key, port)
