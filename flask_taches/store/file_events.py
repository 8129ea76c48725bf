"""Writes to files of one folder, told by the kernel (Linux inotify, through ctypes).

An idle manager on SQLite sleeps on this descriptor instead of looking at the
database's files every few milliseconds: with nothing written it never wakes.
:func:`watch` returns None where inotify is missing (not Linux, no libc
symbol, the per-user limit of watches reached); the caller then looks at the
files on a timer.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
import sys
from collections.abc import Collection

IN_MODIFY = 0x00000002
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
#: A file's content written, or a new file put in its place.
WATCHED = IN_MODIFY | IN_MOVED_TO | IN_CREATE
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded
_READ_SIZE = 64 * 1024


class FileEvents:
    """One inotify descriptor on a folder; :meth:`written` says whether a named file changed."""

    def __init__(self, fd: int, names: Collection[str]) -> None:
        self.fd = fd
        self._names = {name.encode() for name in names}

    def written(self) -> bool:
        """Read every queued event; whether one was about a watched name."""
        hit = False
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return hit
            offset = 0
            while offset < len(data):
                _wd, _mask, _cookie, size = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + size].rstrip(b"\0")
                hit = hit or name in self._names
                offset = start + size

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def watch(folder: str, names: Collection[str]) -> FileEvents | None:
    """Events for ``names`` in ``folder``; None where the kernel cannot tell them."""
    libc = _libc()
    if libc is None:
        return None
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), WATCHED) < 0:
        os.close(fd)
        return None
    return FileEvents(fd, names)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
    add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add.restype = ctypes.c_int
    return libc
