"""Attached files: only copies in the task's own folder, served from there, within a size.

``Tache(fichier=...)`` goes through the same safe copy as ``add(fichier=...)``;
the download route serves only a regular file inside the task's folder
(symlinks resolved), whatever the row says; ``TACHES_MAX_FILE_SIZE`` is
refused in one line, before or while copying, leaving no row and no file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage

from flask_taches import FichierRefused, Tache
from flask_taches.models import taches_table
from flask_taches.state import app_state
from tests.app import taches
from tests.web import METHOD, USERS, as_user

pytestmark = pytest.mark.taches_config(**USERS)

LIMIT = 64  # bytes, for the size tests


def count() -> int:
    with taches.store().read() as conn:
        return int(conn.execute(select(func.count()).select_from(taches_table)).scalar_one())


def forge(tache_id: int, **values: Any) -> None:
    """Edit a row behind add()'s back, as SQL access to the table would."""
    with taches.store().write() as conn:
        conn.execute(update(taches_table).where(taches_table.c.id == tache_id).values(**values))


def stored_fichier(tache_id: int) -> str | None:
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table.c.fichier).where(taches_table.c.id == tache_id))
        return found.scalar_one()  # type: ignore[no-any-return]


def nothing_in_the_folder() -> bool:
    folder = app_state().folder
    return not folder.exists() or not any(folder.iterdir())


def download(app: Flask, tache_id: int) -> tuple[int, bytes]:
    client = app.test_client()
    with client.get(f"/taches/{tache_id}/fichier", headers=as_user("alice")) as response:
        return response.status_code, response.get_data()


@pytest.fixture
def report(tmp_path: Path) -> Path:
    source = tmp_path / "outside" / "report.csv"
    source.parent.mkdir()
    source.write_text("a,b\n1,2\n")
    return source


# -- the object's fichier is copied like the argument --------------------------------------------


def test_a_path_set_on_the_object_is_copied_into_the_tasks_folder(app: Flask, report: Path) -> None:
    with app.app_context():
        tache_id = taches.add(Tache(method=METHOD, owner="alice", fichier=str(report)))
        assert stored_fichier(tache_id) == "report.csv"
        copy = app_state().fichier_folder(tache_id) / "report.csv"
        assert copy.read_bytes() == report.read_bytes()
    report.write_text("changed afterwards")
    assert download(app, tache_id) == (200, b"a,b\n1,2\n"), "the copy, not the source"


def test_an_upload_set_on_the_object_is_copied_under_a_safe_name(app: Flask) -> None:
    upload = FileStorage(stream=io.BytesIO(b"cells"), filename="../../evil.csv")
    with app.app_context():
        tache_id = taches.add(Tache(method=METHOD, owner="alice", fichier=upload))
        assert stored_fichier(tache_id) == "evil.csv"
    assert download(app, tache_id) == (200, b"cells")


def test_a_system_file_set_on_the_object_is_refused_and_saves_nothing(app: Flask) -> None:
    with app.app_context():
        with pytest.raises(FichierRefused) as refused:
            taches.add(Tache(method=METHOD, owner="alice", fichier="/etc/hostname"))
        assert "\n" not in str(refused.value)
        assert count() == 0
        assert nothing_in_the_folder()


def test_add_many_and_chain_copy_the_objects_files_too(app_ctx: Flask, report: Path) -> None:
    ids = taches.add_many([Tache(method=METHOD, fichier=report), METHOD])
    assert [stored_fichier(i) for i in ids] == ["report.csv", None]
    first, second = taches.chain(METHOD, Tache(method=METHOD, fichier=str(report)))
    assert stored_fichier(first) is None
    assert stored_fichier(second) == "report.csv"
    assert (app_state().fichier_folder(second) / "report.csv").is_file()
    with pytest.raises(FichierRefused):
        taches.add_many([METHOD, Tache(method=METHOD, fichier="/etc/hostname")])
    assert count() == 4, "the refused batch added nothing"


def test_a_file_on_the_object_and_as_the_argument_is_refused(app_ctx: Flask, report: Path) -> None:
    with pytest.raises(FichierRefused, match="not both"):
        taches.add(Tache(method=METHOD, fichier=report), fichier=report)
    assert count() == 0
    assert nothing_in_the_folder()


# -- the download serves the task's own folder only ----------------------------------------------


@pytest.mark.parametrize(
    "forged", ["../../etc/hostname", "/etc/hostname", "..", ".", "", "a\x00b.csv"]
)
def test_a_forged_row_is_never_served_from_outside_its_folder(
    app: Flask, report: Path, forged: str
) -> None:
    with app.app_context():
        tache_id = taches.add(METHOD, owner="alice", fichier=report)
        forge(tache_id, fichier=forged)
    status, body = download(app, tache_id)
    assert status == 404
    assert b"a,b" not in body


def test_a_relative_path_reaching_a_real_file_outside_is_not_served(
    app: Flask, report: Path
) -> None:
    with app.app_context():
        tache_id = taches.add(METHOD, owner="alice", fichier=report)
        folder = app_state().fichier_folder(tache_id)
        forge(tache_id, fichier=os.path.relpath(report, folder))
        assert (folder / os.path.relpath(report, folder)).is_file(), "the path does reach it"
    assert download(app, tache_id)[0] == 404


def test_another_tasks_file_is_not_served(app: Flask, report: Path) -> None:
    with app.app_context():
        other = taches.add(METHOD, owner="bob", fichier=report)
        mine = taches.add(METHOD, owner="alice", fichier=report)  # its folder exists
        forge(mine, fichier=f"../{other}/report.csv")
    assert download(app, mine)[0] == 404


def test_a_symlink_out_of_the_folder_is_not_served(app: Flask, report: Path) -> None:
    with app.app_context():
        tache_id = taches.add(METHOD, owner="alice", fichier=report)
        link = app_state().fichier_folder(tache_id) / "link.csv"
        link.symlink_to(report)
        forge(tache_id, fichier="link.csv")
    assert download(app, tache_id)[0] == 404


def test_fichier_path_names_only_a_file_inside_the_tasks_folder(
    app_ctx: Flask, report: Path
) -> None:
    """The service's path agrees with the download route: a forged name gives None."""
    tache_id = taches.add(METHOD, owner="alice", fichier=report)
    own = taches.fichier_path(taches.get_or_raise(tache_id))
    assert own is not None and own.read_bytes() == report.read_bytes()
    folder = app_state().fichier_folder(tache_id)
    forge(tache_id, fichier=os.path.relpath(report, folder))
    assert taches.fichier_path(taches.get_or_raise(tache_id)) is None


def test_the_tasks_own_file_is_still_served(app: Flask, report: Path) -> None:
    with app.app_context():
        tache_id = taches.add(METHOD, owner="alice", fichier=report)
    assert download(app, tache_id) == (200, b"a,b\n1,2\n")


# -- the size limit ---------------------------------------------------------------------------


class CountingStream(io.RawIOBase):
    """``size`` bytes, never seekable, recording how much each read asked for."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.asked: list[int] = []

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.asked.append(len(buffer))
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        if size is None or size < 0:
            size = self.left
        n = min(size, self.left)
        self.left -= n
        return b"x" * n


def sized(tmp_path: Path, size: int) -> Path:
    path = tmp_path / f"size-{size}.csv"
    path.write_bytes(b"x" * size)
    return path


@pytest.mark.taches_config(TACHES_MAX_FILE_SIZE=LIMIT, **USERS)
def test_a_file_at_the_limit_is_accepted(app_ctx: Flask, tmp_path: Path) -> None:
    tache_id = taches.add(METHOD, fichier=sized(tmp_path, LIMIT))
    assert (app_state().fichier_folder(tache_id) / f"size-{LIMIT}.csv").stat().st_size == LIMIT
    upload = FileStorage(stream=io.BytesIO(b"x" * LIMIT), filename="up.csv")
    assert taches.add(METHOD, fichier=upload) > 0


@pytest.mark.taches_config(TACHES_MAX_FILE_SIZE=LIMIT, **USERS)
@pytest.mark.parametrize("how", ["path", "object", "upload", "stream"])
def test_a_file_over_the_limit_is_refused_leaving_nothing(
    db_ctx: Flask, tmp_path: Path, how: str
) -> None:
    fichier: Any
    if how == "path":
        fichier = sized(tmp_path, LIMIT + 1)
    elif how == "object":
        fichier = None
    elif how == "upload":
        fichier = FileStorage(stream=io.BytesIO(b"x" * (LIMIT + 1)), filename="up.csv")
    else:  # not seekable: only the copy's running count can tell
        fichier = FileStorage(stream=CountingStream(LIMIT + 1), filename="up.csv")
    with pytest.raises(FichierRefused, match="TACHES_MAX_FILE_SIZE") as refused:
        if how == "object":
            taches.add(Tache(method=METHOD, fichier=sized(tmp_path, LIMIT + 1)))
        else:
            taches.add(METHOD, fichier=fichier)
    assert "\n" not in str(refused.value)
    assert count() == 0
    assert nothing_in_the_folder()


@pytest.mark.taches_config(TACHES_MAX_FILE_SIZE=1024 * 1024, **USERS)
def test_a_big_stream_is_copied_in_chunks_and_stopped_past_the_limit(app_ctx: Flask) -> None:
    stream = CountingStream(50 * 1024 * 1024)
    with pytest.raises(FichierRefused, match="TACHES_MAX_FILE_SIZE"):
        taches.add(METHOD, fichier=FileStorage(stream=stream, filename="big.csv"))
    assert all(0 < asked <= 1024 * 1024 for asked in stream.asked), "never read(-1)"
    assert stream.left > 40 * 1024 * 1024, "stopped soon after the limit"
    assert count() == 0
    assert nothing_in_the_folder()


@pytest.mark.taches_config(TACHES_MAX_FILE_SIZE=LIMIT, **USERS)
def test_a_refused_size_keeps_the_callers_uncommitted_work(app_ctx: Flask, tmp_path: Path) -> None:
    """Refused before anything is inserted: commit=False work of the caller stays."""
    kept = taches.add(METHOD, commit=False)
    with pytest.raises(FichierRefused):
        taches.add(METHOD, fichier=sized(tmp_path, LIMIT + 1), commit=False)
    app_state().db.session.commit()
    assert count() == 1
    assert stored_fichier(kept) is None
