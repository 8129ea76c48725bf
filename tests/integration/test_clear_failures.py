"""Set-up mistakes say what is wrong in one line: a missing table, a bad setting.

Real ``flask`` processes on every database, after the extension's tables were
dropped (or never made): the manager exits 2 at once instead of logging the
same error every second, commands print one ``Error:`` line, pages one line.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.app import db
from tests.manager_helpers import Managers, managers

pytestmark = pytest.mark.slow

#: What every message about the missing tables says.
NAMES_THE_TABLE = "'taches'"
SAYS_HOW = "`flask db upgrade`"


@pytest.fixture
def no_tables(db_ctx: Flask, tmp_path: Path) -> Iterator[Managers]:
    db.drop_all()  # and, with the taches table, the version table
    db.session.remove()
    with managers(tmp_path) as group:
        try:
            yield group
        finally:
            db.create_all()  # what the cleanup of the managers reads


def assert_one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: "), line
    return line


@pytest.mark.parametrize(
    "args",
    [("start",), ("start", "--forever"), ("run", "1"), ("list",)],
    ids=["start", "start-forever", "run", "list"],
)
def test_a_missing_table_is_one_line_and_exit_2(no_tables: Managers, args: tuple[str, ...]) -> None:
    # --forever too exits at once: the timeout would fail the test otherwise.
    line = assert_one_error_line(no_tables.command(*args, timeout=60), 2)

    assert NAMES_THE_TABLE in line and "missing" in line and SAYS_HOW in line


def test_a_page_says_the_table_is_missing_in_one_line(no_tables: Managers, db_ctx: Flask) -> None:
    response = db_ctx.test_client().get("/taches/")

    assert response.status_code == 503
    (line,) = response.get_data(as_text=True).splitlines()
    assert NAMES_THE_TABLE in line and SAYS_HOW in line


def test_once_created_the_same_commands_work(no_tables: Managers) -> None:
    assert no_tables.command("init-db").returncode == 0

    listed = no_tables.command("list")
    assert (listed.returncode, listed.stdout.strip()) == (0, "no task"), listed.stderr


@pytest.mark.dialects("sqlite")
@pytest.mark.parametrize(
    ("setting", "value"),
    [("TACHES_MAX", "abc"), ("TACHES_EXECUTOR", "threads")],
)
def test_a_bad_setting_is_its_one_line_configuration_error(
    db_ctx: Flask, tmp_path: Path, setting: str, value: str
) -> None:
    with managers(tmp_path, **{setting: value}) as group:
        for args in (("list",), ("start",)):
            line = assert_one_error_line(group.command(*args), 1)
            assert setting in line and value in line, line
