"""The file watch never drops the locks of the process's own SQLite connections.

POSIX locks belong to a process: closing any descriptor of a file drops them
all, those a SQLite connection of the same process holds included. The check is
SQLite's own: a checkpoint run by another process cannot reset the WAL while a
reader here still uses it, unless that reader's lock on the ``-shm`` is gone.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_taches.store.file_watch import CommitMark

# Prints "busy,log,checkpointed": busy is 1 when a reader kept the WAL from being reset.
CHECKPOINT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0)
print(",".join(map(str, conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())))
conn.close()
"""


def checkpoint_elsewhere(path: Path) -> int:
    """``busy`` of a TRUNCATE checkpoint run in another process."""
    out = subprocess.run(
        [sys.executable, "-c", CHECKPOINT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return int(out.split(",")[0])


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A database in WAL mode with frames in its WAL, and a read transaction open on it."""
    path = tmp_path / "watched.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    conn.execute("BEGIN")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)
    yield path, conn
    conn.execute("COMMIT")
    conn.close()


def test_a_reader_of_this_process_keeps_its_lock_while_the_watch_looks(
    reader: tuple[Path, sqlite3.Connection],
) -> None:
    path, conn = reader
    assert checkpoint_elsewhere(path) == 1  # the reader's lock holds the WAL: the check works
    mark = CommitMark(str(path))
    for _ in range(3):
        mark.read()
    CommitMark(str(path)).read()  # a second watch of the same file, as after a re-exec
    assert checkpoint_elsewhere(path) == 1
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)


def test_the_watch_follows_a_file_deleted_and_made_again(tmp_path: Path) -> None:
    path = tmp_path / "again.db"
    sqlite3.connect(path).close()
    mark = CommitMark(str(path))
    first = mark.read()
    path.unlink()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.close()
    assert mark.read() != first
