"""What the fault tests look at from outside: open transactions, sockets, side channels."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from flask_taches import Status, Tache
from tests.app import db, taches
from tests.manager_helpers import rows


def socket_inodes(pid: int) -> set[str]:
    """The sockets process ``pid`` holds (``socket:[inode]``), standard streams aside."""
    found = set()
    folder = Path(f"/proc/{pid}/fd")
    try:
        entries = list(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.name in ("0", "1", "2"):
            continue
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def _engine(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=None)


def open_transactions(url: str) -> int:
    """Sessions of the database at ``url`` inside a transaction that is not running a query.

    PostgreSQL: "idle in transaction"; MariaDB: InnoDB transactions of a
    sleeping connection. SQLite: 1 when a write lock cannot be taken at once.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        import sqlite3

        raw = sqlite3.connect(parsed.database or "", timeout=0.2, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
            return 0
        except sqlite3.OperationalError:
            return 1
        finally:
            raw.close()
    engine = create_engine(parsed, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                query = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db"
                    " AND state LIKE 'idle in transaction%%'"
                )
            else:
                query = (
                    "SELECT count(*) FROM information_schema.innodb_trx t"
                    " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                    " WHERE p.db = :db AND p.command = 'Sleep'"
                )
            return int(
                conn.execute(text(query.replace("%%", "%")), {"db": parsed.database}).scalar_one()
            )
    finally:
        engine.dispose()


def statuses() -> Counter[str]:
    return Counter(r["status"] for r in rows().values())


def settled() -> bool:
    """No row waits or runs any more."""
    found = statuses()
    return not (found[Status.TO_RUN.value] or found[Status.RUNNING.value])


def runs(path: Path) -> Counter[int]:
    """How many times each task id ran, from the lines its runs appended to ``path``."""
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)


def add_counted(out: Path, count: int, seconds: float, max_attempts: int = 3) -> list[int]:
    """``count`` tasks that sleep ``seconds`` then append their run to ``out``; their ids."""
    ids = taches.add_many(
        Tache(
            method="tests.faults.tasks:counted",
            parametres={"path": str(out), "seconds": seconds},
            max_attempts=max_attempts,
        )
        for _ in range(count)
    )
    db.session.remove()
    return ids
