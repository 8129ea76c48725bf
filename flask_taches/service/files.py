"""Attached files: one folder per task, a safe name, an extension allowlist, a size limit.

A file is checked before anything is saved (:func:`check_fichier`: its kind,
its name, its size when it can be known ahead), then copied in chunks with a
running count (:func:`store_fichier`), so a stream bigger than
``TACHES_MAX_FILE_SIZE`` is stopped as soon as it passes it, never read whole
into memory. A download serves only what :func:`contained_fichier` finds in
the task's own folder, whatever the row says.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import IO, Any

from flask import current_app
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from ..exceptions import FichierRefused

#: Bytes read at once while copying a file.
CHUNK = 64 * 1024


def safe_name(name: str | None) -> str:
    """A file name that cannot leave its folder, with an allowed extension."""
    cleaned = secure_filename(name or "")
    if not cleaned or "." not in cleaned:
        raise FichierRefused(f"file name {name!r} is not usable (needs a name and an extension)")
    extension = cleaned.rsplit(".", 1)[1].lower()
    allowed = [e.lower().lstrip(".") for e in current_app.config["TACHES_ALLOWED_EXTENSIONS"]]
    if extension not in allowed:
        raise FichierRefused(
            f"extension .{extension} is not allowed (allowed: {', '.join(allowed)})"
        )
    return cleaned


def check_fichier(fichier: Any) -> str:
    """The safe name ``fichier`` will be stored under; refuses what can be told ahead.

    An upload (``FileStorage``) or a local file (a path); its size is checked
    here when it is known (a path, a seekable stream), else while copying.
    """
    if isinstance(fichier, FileStorage):
        name = safe_name(fichier.filename)
        _refuse_size(name, _remaining(fichier.stream))
        return name
    if isinstance(fichier, (str, Path)):
        source = Path(fichier)
        if not source.is_file():
            raise FichierRefused(f"{source} is not a file")
        name = safe_name(source.name)
        _refuse_size(name, source.stat().st_size)
        return name
    raise FichierRefused(f"fichier must be a FileStorage or a path, not {type(fichier).__name__}")


def store_fichier(folder: Path, fichier: Any) -> str:
    """Copy an upload (``FileStorage``) or a local file (path) into ``folder``; its name.

    A refused or failed copy leaves no partial file behind.
    """
    name = check_fichier(fichier)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    try:
        if isinstance(fichier, FileStorage):
            _copy(fichier.stream, target, name)
        else:
            with open(fichier, "rb") as source:
                _copy(source, target, name)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return name


def contained_fichier(folder: Path, name: str | None) -> Path | None:
    """The regular file ``name`` inside ``folder``, symlinks resolved; None otherwise.

    A row holds a bare name; one edited behind ``add()``'s back
    (``"../../etc/hostname"``, an absolute path, a link out) names nothing here.
    """
    if not name:
        return None
    try:
        root = folder.resolve()
        path = (folder / name).resolve()
        inside = root in path.parents and path.is_file()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop
        return None
    return path if inside else None


def remove_folder(folder: Path) -> None:
    """Remove a task's folder if it exists (deleting a task removes its file)."""
    shutil.rmtree(folder, ignore_errors=True)


def _max_size() -> int:
    return int(current_app.config["TACHES_MAX_FILE_SIZE"])


def _refuse_size(name: str, size: int | None) -> None:
    limit = _max_size()
    if size is not None and size > limit:
        raise _too_big(name, limit)


def _too_big(name: str, limit: int) -> FichierRefused:
    return FichierRefused(f"file {name!r} is larger than TACHES_MAX_FILE_SIZE ({limit} bytes)")


def _remaining(stream: Any) -> int | None:
    """Bytes left in a seekable stream (its position kept), None when it cannot tell."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    return max(0, int(end) - int(here))


def _copy(source: IO[bytes], target: Path, name: str) -> None:
    """Copy in chunks, counting: refused as soon as the count passes the limit."""
    limit = _max_size()
    copied = 0
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            copied += len(chunk)
            if copied > limit:
                raise _too_big(name, limit)
            out.write(chunk)
