"""The two pipes between a manager and one child of its pool, and what goes through them.

* the *task pipe*, manager to child: one claimed task at a time, pickled
  behind its length. The manager holds the only write end, so when the
  manager is gone (even by ``kill -9``) the child reads the end of the file
  and leaves;
* the *result pipe*, child to manager: two bytes once the task's end is
  recorded, the status (:func:`~.end_hints.status_code`) and whether the
  child now retires. Like a forked child's end hint it only spares the
  manager a read of the row, which stays the truth.

Both are plain ``os.pipe`` descriptors: nothing here allocates more than the
task's row, and a two-byte write is atomic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import struct
from dataclasses import dataclass

from ...status import Status
from ...store import Claimed
from .base import EndHint
from .end_hints import hint_of, status_code

_LENGTH = struct.Struct("<I")
_RESULT = struct.Struct("<BB")


@dataclass(frozen=True)
class TaskResult:
    """What a pool child said once it had run a task."""

    #: Its end as recorded (None when garbled: then the row is read).
    hint: EndHint | None
    #: The child leaves after this task (its limits are reached, or the task was stopped).
    retiring: bool


def send_task(fd: int, claimed: Claimed) -> None:
    """Write one claimed task to a child's task pipe (blocks until the child has it all)."""
    row = dict(claimed.row) if claimed.row is not None else None
    payload = pickle.dumps(dataclasses.replace(claimed, row=row), pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _LENGTH.pack(len(payload)) + payload)


def receive_task(fd: int) -> Claimed | None:
    """In the child: the next task, None once the manager closed the pipe (or died)."""
    header = _read_exactly(fd, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = _read_exactly(fd, length)
    if payload is None:
        return None
    claimed = pickle.loads(payload)  # written by our own manager, never by a stranger
    assert isinstance(claimed, Claimed)
    return claimed


def post_result(fd: int, status: Status | None, retiring: bool) -> None:
    """In the child, once the end is recorded; a manager gone (a broken pipe) is no error."""
    with contextlib.suppress(OSError):
        os.write(fd, _RESULT.pack(status_code(status), int(retiring)))


def read_result(fd: int) -> TaskResult | None:
    """In the manager, without blocking: the child's result, None while it has posted none."""
    try:
        data = os.read(fd, _RESULT.size)
    except BlockingIOError:
        return None
    if len(data) != _RESULT.size:
        return None  # closed without a word (it died): its exit tells
    code, retiring = _RESULT.unpack(data)
    return TaskResult(hint_of(code), bool(retiring))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
