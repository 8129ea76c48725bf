"""Figures for the dashboard and ``flask taches stats``."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from flask_taches import Status
from flask_taches.clock import utcnow
from tests.store.helpers import HOST, add, set_columns, store


def test_stats_counts_and_throughput(db_ctx: Flask) -> None:
    add(2, queue="mail")
    add(1, run_at=utcnow() + timedelta(hours=1))
    (done,) = add(1)
    set_columns(done, run_at=utcnow() - timedelta(minutes=1))
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    store().record_end(claimed.id, claimed.attempt, Status.COMPLETED)
    stats = store().stats()
    assert stats["by_status"][Status.TO_RUN] == 3
    assert stats["by_status"][Status.COMPLETED] == 1
    assert stats["by_queue"]["mail"] == {Status.TO_RUN.value: 2}
    assert stats["oldest_to_run_age"] is not None and stats["oldest_to_run_age"] >= 0
    one_minute = stats["throughput"][0]
    assert (one_minute["minutes"], one_minute["ended"]) == (1, 1)
    assert one_minute["by_status"] == {Status.COMPLETED.value: 1}


def test_count_running_counts_every_host(db_ctx: Flask) -> None:
    add(3)
    store().claim_batch(1, max_running=5, hostname=HOST)
    store().claim_batch(1, max_running=5, hostname="another-host")
    assert store().count_running() == 2
