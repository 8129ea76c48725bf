"""SQLite's wake-up source: a commit by another process, seen in the database's files.

What tells a commit is the *commit mark*: the header of the WAL index (the
``-shm`` file, which SQLite rewrites as the last step of every commit in WAL
mode) and the change counter of the database's own header (rollback-journal
mode). Both change when, and only when, a commit has become visible, so a read
made after the mark moved always sees it. (A file's size and mtime did not:
they move when the commit's pages are written, before the commit is visible,
so a read made in between found nothing, and the commit was seen only at the
next poll; and a WAL rewritten from its start after a checkpoint keeps its
size, with an mtime as coarse as the kernel's clock tick.)

What wakes the watch to look: inotify on the database's folder (Linux), where
every commit first writes the WAL or the file itself; then the mark is looked
at until it moves, briefly (the writer may still be syncing). Without inotify
the mark is looked at every :data:`FILE_WATCH` seconds.

It keeps no connection open: the manager forks its children while it waits,
and a SQLite connection open across a fork shares its locking state with the
child. A moved mark is confirmed with one short read (``claimable``).

It keeps the two files open instead, and closes a file only once it is gone.
POSIX locks belong to a process, not to a descriptor: closing *any*
descriptor of a file drops every lock the process holds on it, those of the
process's own SQLite connections included (the ``-shm`` lock that tells
other processes a connection is still using the WAL index, a reader's mark).
A watch that opened and closed the files at each look would let another
process reset the WAL index under a live connection ("disk I/O error", then
"database disk image is malformed"). A file that is gone (unlinked: SQLite
deletes the ``-shm`` when its last connection closes) is held by no
connection, so closing it is safe.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator

from . import file_events
from .wakeups import WakeSource, readable

FILE_WATCH = 0.01  # seconds between two looks at the commit mark without inotify
#: After a write to the files, seconds until each next look at the mark (about 2 s in all):
#: the commit it belongs to becomes visible once the writer has synced it.
SETTLE = tuple(0.001 * 2**step for step in range(11))
_WAL_INDEX_HEADER = 48  # bytes: the first copy of the WAL index header (no read marks)
_CHANGE_COUNTER = (24, 4)  # offset and size of the file change counter in the database header

Mark = tuple[object, ...]
_HELD: dict[str, _HeldFile] = {}


class CommitMark:
    """What changes with each visible commit of the database at ``path`` (see the module)."""

    def __init__(self, path: str) -> None:
        self._database = _held(path)
        self._index = _held(f"{path}-shm")

    def read(self) -> Mark:
        return (
            self._database.read(*_CHANGE_COUNTER, identity=True),
            self._index.read(0, _WAL_INDEX_HEADER),
        )


def _held(path: str) -> _HeldFile:
    """This process's one descriptor of ``path``: kept for the process's life, never closed
    while the file exists (a watch that ends leaves it to the next one)."""
    return _HELD.setdefault(path, _HeldFile(path))


class _HeldFile:
    """A file read through one descriptor kept open, reopened once the file is gone."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    def read(self, offset: int, size: int, identity: bool = False) -> object:
        fd = self._current()
        if fd is None:
            return None
        try:
            data = os.pread(fd, size, offset)
            return (os.fstat(fd).st_ino, data) if identity else data
        except OSError:
            return None

    def _current(self) -> int | None:
        if self._fd is not None and _unlinked(self._fd):
            os.close(self._fd)  # nothing holds a lock on a file that is gone
            self._fd = None
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDONLY)
            except OSError:
                return None
        return self._fd


def _unlinked(fd: int) -> bool:
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


class FileWatch(WakeSource):
    """Waits for a commit by another connection that left claimable work (see the module).

    ``claimable(within)`` says whether a task is ready, or due within ``within``
    seconds (the rest of the wait): a task added to run a little later wakes
    the manager too, which then waits for its run_at.
    """

    trusted = True  # every commit moves the mark

    def __init__(self, path: str, claimable: Callable[[float], bool]) -> None:
        self._path = path
        self._claimable = claimable
        self._events = file_events.watch(
            os.path.dirname(path) or ".",
            [os.path.basename(path) + suffix for suffix in ("", "-wal", "-journal")],
        )
        self._mark = CommitMark(path)
        self._seen = self._mark.read()
        #: Why each wait ended: "commit" (work seen), "timeout", "wake_fd".
        self.wakes: Counter[str] = Counter()

    @property
    def uses_inotify(self) -> bool:
        return self._events is not None

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        deadline = time.monotonic() + timeout
        settle: Iterator[float] = iter(())
        events_fd = self._events.fd if self._events is not None else None
        while True:
            # First of all, a commit made since the last wait ended (the loop worked meanwhile).
            if self._committed() and self._claimable(max(0.0, deadline - time.monotonic())):
                self.wakes["commit"] += 1
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                self.wakes["timeout"] += 1
                return False
            step = FILE_WATCH if events_fd is None else next(settle, left)
            ready = readable([wake_fd, events_fd], min(step, left))
            if wake_fd is not None and wake_fd in ready:
                self.wakes["wake_fd"] += 1
                return False
            if self._events is not None and events_fd in ready and self._events.written():
                settle = iter(SETTLE)  # look again soon: the commit may not be visible yet

    def _committed(self) -> bool:
        mark = self._mark.read()
        if mark == self._seen:
            return False
        self._seen = mark
        return True

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
