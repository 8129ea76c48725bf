"""The two pipes between a manager and one child of its pool, and what goes through them.

* the *task pipe*, manager to child: one claimed task at a time, pickled
  behind its length. The manager holds the only write end, so when the
  manager is gone (even by ``kill -9``) the child reads the end of the file
  and leaves;
* the *result pipe*, child to manager: once the task's end is recorded, the
  status (:func:`~.end_hints.status_code`), whether the child now retires,
  and the task it claimed next, if any (:mod:`.pool_claims`), pickled
  behind its length. The status, like a forked child's end hint, only
  spares the manager a read of the row, which stays the truth.

Both are plain ``os.pipe`` descriptors, and a result is one write: its
manager reads it at once, whole, or waits for the rest of a long one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import select
import struct
from dataclasses import dataclass

from ...status import Status
from ...store import Claimed
from .base import EndHint
from .end_hints import hint_of, status_code

_LENGTH = struct.Struct("<I")
_RESULT = struct.Struct("<BBI")  # status code, retiring, length of the next task (0: none)


@dataclass(frozen=True)
class TaskResult:
    """What a pool child said once it had run a task."""

    #: Its end as recorded (None when garbled: then the row is read).
    hint: EndHint | None
    #: The child leaves after this task (its limits are reached, or the task was stopped).
    retiring: bool
    #: The task the child claimed once this one had ended, and now runs.
    following: Claimed | None = None


def send_task(fd: int, claimed: Claimed) -> None:
    """Write one claimed task to a child's task pipe (blocks until the child has it all)."""
    payload = _pickled(claimed)
    _write_all(fd, _LENGTH.pack(len(payload)) + payload)


def receive_task(fd: int) -> Claimed | None:
    """In the child: the next task, None once the manager closed the pipe (or died)."""
    header = _read_exactly(fd, _LENGTH.size)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = _read_exactly(fd, length)
    return None if payload is None else _unpickled(payload)


def post_result(fd: int, status: Status | None, retiring: bool, following: Claimed | None) -> None:
    """In the child, once the end is recorded; a manager gone (a broken pipe) is no error."""
    payload = _pickled(following) if following is not None else b""
    with contextlib.suppress(OSError):
        _write_all(fd, _RESULT.pack(status_code(status), int(retiring), len(payload)) + payload)


def read_result(fd: int) -> TaskResult | None:
    """In the manager: the child's result, None while it has posted none (never blocks then)."""
    try:
        header = os.read(fd, _RESULT.size)
    except BlockingIOError:
        return None
    if len(header) != _RESULT.size:
        return None  # closed without a word (it died): its exit tells
    code, retiring, length = _RESULT.unpack(header)
    payload = _read_exactly(fd, length, waiting=True) if length else None
    following = _unpickled(payload) if payload is not None else None
    return TaskResult(hint_of(code), bool(retiring), following)


def _pickled(claimed: Claimed) -> bytes:
    row = dict(claimed.row) if claimed.row is not None else None
    return pickle.dumps(dataclasses.replace(claimed, row=row), pickle.HIGHEST_PROTOCOL)


def _unpickled(payload: bytes) -> Claimed:
    claimed = pickle.loads(payload)  # written by our own manager or child, never a stranger
    assert isinstance(claimed, Claimed)
    return claimed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, *, waiting: bool = False) -> bytes | None:
    """``size`` bytes, None at the pipe's end; ``waiting``: on a non-blocking pipe."""
    chunks: list[bytes] = []
    while size:
        if waiting:
            select.select([fd], [], [])  # the rest of a write longer than the pipe's buffer
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
