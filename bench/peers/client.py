"""One client for every system of the side-by-side run: enqueue, purge, time pickups.

    python -m bench.peers.client SYSTEM purge
    python -m bench.peers.client SYSTEM fill COUNT PORT PREFIX     -> {"rate": calls/s}
    python -m bench.peers.client SYSTEM latency COUNT WARM_UP      -> {"latencies_ms": [...]}

``fill`` enqueues COUNT no-op tasks with one call each, as an application
would, keyed PREFIX-0, PREFIX-1, ...; their reports go to PORT (0: none).
``latency`` waits for each task's report before the next enqueue, after a
random pause (the idle worker is caught anywhere in its wait): from the
enqueue call to the task's first line. SYSTEM is ``taches`` (run with the
project's Python; the database is ``BENCH_DATABASE_URL``) or a peer (run with
the benchmark's own virtualenv).
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

REDIS_RQ = "redis://127.0.0.1:6379/13"
LATENCY_TIMEOUT = 60.0  # seconds a pickup may take before the client gives up (a boot)

Enqueue = Callable[[str, int], None]


def taches() -> tuple[Enqueue, Callable[[], None]]:
    from sqlalchemy import delete

    from bench import app as bench_app
    from flask_taches.models import taches_table

    app = bench_app.create_app()
    app.app_context().push()

    def enqueue(key: str, port: int) -> None:
        bench_app.taches.add("bench.tasks:reported", parametres={"key": key, "port": port})

    def purge() -> None:
        with bench_app.taches.store().write() as conn:
            conn.execute(delete(taches_table))

    return enqueue, purge


def rq() -> tuple[Enqueue, Callable[[], None]]:
    from redis import Redis
    from rq import Queue

    from bench.peers.rq_tasks import noop

    redis = Redis.from_url(REDIS_RQ)
    queue = Queue("bench", connection=redis)

    def enqueue(key: str, port: int) -> None:
        queue.enqueue(noop, key, port)

    return enqueue, redis.flushdb


def celery() -> tuple[Enqueue, Callable[[], None]]:
    from redis import Redis

    from bench.peers.celery_tasks import BROKER, noop

    def enqueue(key: str, port: int) -> None:
        noop.delay(key, port)

    return enqueue, Redis.from_url(BROKER).flushdb


def huey() -> tuple[Enqueue, Callable[[], None]]:
    from bench.peers.huey_tasks import huey, noop

    def enqueue(key: str, port: int) -> None:
        noop(key, port)

    return enqueue, huey.flush


def procrastinate() -> tuple[Enqueue, Callable[[], None]]:
    import procrastinate
    import psycopg

    from bench.peers.procrastinate_tasks import app, noop

    dsn = os.environ["BENCH_PROCRASTINATE_DSN"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
    # An application defers through a sync connector (its pool), as Procrastinate advises.
    # (entered for the client's whole life: it ends with os._exit)
    app.replace_connector(procrastinate.SyncPsycopgConnector(conninfo=dsn)).__enter__()
    app.open()
    if exists is None or exists[0] is None:
        app.schema_manager.apply_schema()  # the first use of this database

    def enqueue(key: str, port: int) -> None:
        noop.defer(key=key, port=port)

    def purge() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")

    return enqueue, purge


SYSTEMS: dict[str, Callable[[], tuple[Enqueue, Callable[[], None]]]] = {
    "taches": taches,
    "rq": rq,
    "celery": celery,
    "huey": huey,
    "procrastinate": procrastinate,
}


def fill(enqueue: Enqueue, count: int, port: int, prefix: str) -> dict[str, Any]:
    started = time.perf_counter()
    for index in range(count):
        enqueue(f"{prefix}-{index}", port)
    return {"rate": count / (time.perf_counter() - started)}


def latency(enqueue: Enqueue, count: int, warm_up: int) -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        found = []
        for index in range(warm_up + count):
            time.sleep(random.uniform(0.03, 0.09))
            key = f"latency-{os.getpid()}-{index}"
            called = time.time()
            enqueue(key, port)
            started = _wait_for(sock, key)
            if index >= warm_up:  # the first ones also wait for the worker's boot
                found.append((started - called) * 1000)
    return {"latencies_ms": found}


def _wait_for(sock: socket.socket, key: str) -> float:
    deadline = time.monotonic() + LATENCY_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            got, started = sock.recv(256).decode().split()
        except TimeoutError:
            break
        if got == key:
            return float(started)
    raise SystemExit(f"no report of {key} within {LATENCY_TIMEOUT:g} s")


def main(argv: list[str]) -> None:
    system, action, *rest = argv
    enqueue, purge = SYSTEMS[system]()
    if action == "purge":
        purge()
        result: dict[str, Any] = {}
    elif action == "fill":
        result = fill(enqueue, int(rest[0]), int(rest[1]), rest[2])
    elif action == "latency":
        result = latency(enqueue, int(rest[0]), int(rest[1]))
    else:
        raise SystemExit(f"unknown action {action!r}: purge, fill or latency")
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # some clients keep threads (pools, event loops) that would delay the exit


if __name__ == "__main__":
    main(sys.argv[1:])
