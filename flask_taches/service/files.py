"""Attached files: one folder per task, a safe name, an extension allowlist."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from flask import current_app
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from ..exceptions import FichierRefused


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


def store_fichier(folder: Path, fichier: Any) -> str:
    """Copy an upload (``FileStorage``) or a local file (path) into ``folder``."""
    if isinstance(fichier, FileStorage):
        name = safe_name(fichier.filename)
        folder.mkdir(parents=True, exist_ok=True)
        fichier.save(folder / name)
        return name
    if isinstance(fichier, (str, Path)):
        source = Path(fichier)
        if not source.is_file():
            raise FichierRefused(f"{source} is not a file")
        name = safe_name(source.name)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)
        return name
    raise FichierRefused(f"fichier must be a FileStorage or a path, not {type(fichier).__name__}")


def remove_folder(folder: Path) -> None:
    """Remove a task's folder if it exists (deleting a task removes its file)."""
    shutil.rmtree(folder, ignore_errors=True)
