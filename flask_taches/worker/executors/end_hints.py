"""The end hints of forked children: memory they share with their manager.

A forked child that recorded its end (or found the attempt no longer its
own) posts it here just before it exits, so that its manager, once it has
reaped the child, need not read the row back to know how it ended. A hint is
only ever an optimisation of that read: the row is the truth. A child that
posts nothing (a crash, the task calling ``os._exit``, a signal), a slot
overwritten or unreadable, a board that is full: each costs the manager the
read, never a wrong end.

What it spares is one read by the manager for every task that ends normally;
``bench/fast_paths.py`` (``end hint``, 300 tasks, medians of 3 on a loaded
2-core machine) measured it at 1.6 ms on SQLite and 1.0 ms on PostgreSQL.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

from ...status import Status
from .base import EndHint

#: Forked children a manager can hear from at once (8 bytes each).
SLOTS = 4096
_SLOT = struct.Struct("<Q")  # a token (the high 56 bits) and a status code (the low 8)
_NOT_RUN_CODE = 0xFF  # the attempt was not, or no longer, this process's
_STATUSES = list(Status)


@dataclass(frozen=True)
class HintSlot:
    """Where one child posts its hint, and the token that proves the slot is its own."""

    index: int
    token: int


class EndHintBoard:
    """Slots shared with forked children, one per running child (see the module's docstring).

    Zeroed before the fork, written by the child once :func:`run_claimed` has
    returned, read and freed by the manager once the child is reaped.
    """

    def __init__(self, slots: int = SLOTS) -> None:
        self._map = mmap.mmap(-1, slots * _SLOT.size)  # shared and anonymous
        self._free = list(range(slots - 1, -1, -1))
        self._tokens = 0

    def reserve(self) -> HintSlot | None:
        """A zeroed slot and a fresh token for the next child; None when all are taken."""
        if not self._free:
            return None
        index = self._free.pop()
        self._tokens += 1
        _SLOT.pack_into(self._map, index * _SLOT.size, 0)
        return HintSlot(index, self._tokens)

    def post(self, slot: HintSlot, status: Status | None) -> None:
        """In the child, after its end is recorded (``status``) or found not its own (None)."""
        _SLOT.pack_into(self._map, slot.index * _SLOT.size, slot.token << 8 | status_code(status))

    def collect(self, slot: HintSlot) -> EndHint | None:
        """In the manager, once the child is reaped: its hint, None if none; frees the slot."""
        (value,) = _SLOT.unpack_from(self._map, slot.index * _SLOT.size)
        self._free.append(slot.index)
        if value >> 8 != slot.token:
            return None  # never posted, or not by this child: read the row
        return hint_of(value & 0xFF)


def status_code(status: Status | None) -> int:
    """One byte for the end a child recorded (None: the attempt was not its own)."""
    return _NOT_RUN_CODE if status is None else _STATUSES.index(status)


def hint_of(code: int) -> EndHint | None:
    """The hint a :func:`status_code` byte stands for; None if garbled (read the row)."""
    if code == _NOT_RUN_CODE:
        return EndHint(None)
    if code >= len(_STATUSES):
        return None
    return EndHint(_STATUSES[code])
