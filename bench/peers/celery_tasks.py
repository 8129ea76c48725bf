"""Celery's app and no-op task, on the local Redis (no result backend, as for the others)."""

from __future__ import annotations

import os

from celery import Celery

from bench.peers.report import report

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/14")

app = Celery("bench", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(key: str, port: int) -> None:
    report(key, port)
