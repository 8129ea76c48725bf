"""A pool child keeps its database connections between transactions (``keep_connections``).

SQLite's store otherwise opens a connection per transaction, which costs a
task that runs in a long-lived process more CPU than the task itself.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from sqlalchemy import event

from flask_taches import Status
from tests.store.helpers import claim_one_task, row, store


def test_kept_connections_serve_every_write_of_a_task_and_its_watchdog(db_ctx: Flask) -> None:
    store().keep_connections()
    opened: list[Any] = []
    event.listen(store().engine, "connect", lambda dbapi, record: opened.append(dbapi))
    try:
        first = claim_one_task()
        beat = threading.Thread(target=store().beat, args=(first.id, first.attempt))
        beat.start()  # the watchdog's thread takes a connection from the same pool
        beat.join()
        fast = store().record_end(first.id, first.attempt, Status.COMPLETED, logs=[])
        second = claim_one_task()
        plain = store().record_end(second.id, second.attempt, Status.FAILED, logs=[])
        assert (fast, plain) == (Status.COMPLETED, Status.FAILED)
        assert row(first.id)["status"] == Status.COMPLETED
        assert row(second.id)["status"] == Status.FAILED
        assert len(opened) <= 1  # one at most, for all of them (other stores pooled already)
    finally:
        store().engine.dispose()
