"""Small pieces of the task CLI and of the live console, without a database."""

from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta, timezone

import click
import pytest

from flask_taches.cli.errors import EXIT_INVALID, InvalidInput
from flask_taches.cli.inputs import parse_datetime, parse_id, parse_param, parse_parametres
from flask_taches.console import CLEAR_LINE, Console
from flask_taches.exit_codes import EXIT_COMPLETED, EXIT_ENDED, EXIT_NOT_RUN, exit_code
from flask_taches.preview import preview
from flask_taches.status import Status
from flask_taches.verbosity import log_level


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [(-1, logging.WARNING), (0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG), (5, 10)],
)
def test_log_level_of_the_v_count(verbosity: int, level: int) -> None:
    assert log_level(verbosity) == level


def test_exit_codes() -> None:
    assert exit_code(Status.COMPLETED) == EXIT_COMPLETED == 0
    for status in (Status.FAILED, Status.INTERRUPTED, Status.CANCELLED, Status.TO_RUN):
        assert exit_code(status) == EXIT_ENDED == 1
    # An end recorded by someone else (fenced out): not this run's, as for an executor's child.
    assert exit_code(None) == EXIT_NOT_RUN == 2
    assert InvalidInput("x").exit_code == EXIT_INVALID == 2


def test_parse_id() -> None:
    assert parse_id("42") == 42
    assert parse_id(str(2**31 - 1)) == 2**31 - 1
    for text in ("abc", "4.2", "", "0", "-3", str(2**31), "99999999999999999999"):
        with pytest.raises(InvalidInput, match="is not a task id"):
            parse_id(text)


def test_invalid_input_is_one_line() -> None:
    error = InvalidInput("first line\nsecond   line")
    assert error.format_message() == "first line second line"
    assert isinstance(error, click.ClickException)


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("n=3", ("n", 3)),
        ("flag=true", ("flag", True)),
        ("ids=[1, 2]", ("ids", [1, 2])),
        ("name=Ada", ("name", "Ada")),
        ("code=007", ("code", "007")),
        ("empty=", ("empty", "")),
        ("eq=a=b", ("eq", "a=b")),
    ],
)
def test_parse_param_reads_json_else_text(text: str, pair: tuple[str, object]) -> None:
    assert parse_param(text) == pair


@pytest.mark.parametrize("text", ["novalue", "=3", " =3"])
def test_parse_param_refuses_a_missing_key(text: str) -> None:
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_param(text)


def test_parse_parametres_merges_json_and_params() -> None:
    assert parse_parametres('{"a": 1, "b": 2}', ["b=3", "c=x"]) == {"a": 1, "b": 3, "c": "x"}
    assert parse_parametres(None, []) == {}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_parametres("{nope", [])
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_parametres("[1]", [])


def test_parse_datetime() -> None:
    utc_noon = datetime(2030, 1, 31, 12, tzinfo=timezone.utc)
    assert parse_datetime("2030-01-31T12:00:00Z") == utc_noon
    assert parse_datetime("2030-01-31T12:00:00") == utc_noon
    assert parse_datetime("2030-01-31T13:00:00+01:00") == utc_noon
    assert parse_datetime("2030-01-31T13:00:00+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        parse_datetime("next tuesday")


def test_preview_is_one_line_and_cut() -> None:
    assert preview({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert preview("x" * 500, limit=10) == "x" * 9 + "…"
    assert preview({1, 2}) == '"{1, 2}"'


# -- the console ------------------------------------------------------------------------------

ENTRY = {"level": "info", "message": "hello", "details": {"k": 1}, "at": "2030-01-31T12:00Z"}
PROGRESS = {"step": 2, "max": 4, "phase": 1, "phases": 1, "label": "half", "percent": 50.0}


def test_plain_console_at_v_shows_start_logs_and_end_only() -> None:
    out = io.StringIO()
    console = Console(1, out, tty=False)
    console.started(7, "tests.tasks:add", 1, {"a": 1})
    console.log(ENTRY)
    console.debug("hidden at -v")
    console.progress(PROGRESS)
    console.ended(7, "COMPLETED", 0.5, 11)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("task 7 started: tests.tasks:add (attempt 1, pid ")
    assert lines[1].endswith("INFO     hello")
    assert lines[2] == "task 7 COMPLETED in 0.50 s: result 11"
    assert len(lines) == 3
    assert "\033[" not in out.getvalue()


def test_plain_console_at_vv_adds_debug_details_and_progress_lines() -> None:
    out = io.StringIO()
    console = Console(2, out, tty=False)
    console.log(ENTRY)
    console.debug("a debug line", {"n": 1})
    console.progress(PROGRESS)
    console.progress(PROGRESS)  # a repeat is not printed twice
    console.progress({**PROGRESS, "phase": 2, "phases": 3, "step": 4})  # held back...
    console.close()  # ...then printed, as the last state
    lines = out.getvalue().splitlines()
    assert lines[1] == '    {"k": 1}'
    assert lines[2].endswith("DEBUG    a debug line")
    assert lines[4] == "progress  50.0% 2/4 half"
    assert lines[5] == "progress  50.0% 4/4 phase 2/3 half"
    assert len(lines) == 6


def test_quiet_levels_show_warnings_only() -> None:
    out = io.StringIO()
    console = Console(0, out, tty=False)
    console.started(7, "m", 1, {})
    console.log(ENTRY)
    console.log({**ENTRY, "level": "error", "message": "bad"})
    assert out.getvalue().splitlines()[0].endswith("ERROR    bad")
    assert len(out.getvalue().splitlines()) == 1


def test_terminal_console_colours_and_redraws_the_bar_in_place() -> None:
    out = io.StringIO()
    console = Console(2, out, tty=True, colour=True)
    console.progress(PROGRESS)
    console.log({**ENTRY, "level": "error", "message": "boom"})
    console.ended(7, "FAILED", 1.0)
    text = out.getvalue()
    assert text.startswith(CLEAR_LINE + "[")
    assert "\033[31m" in text, "errors are red"
    # The log line is printed above the bar, which is drawn again under it.
    boom = text.index("boom")
    assert text.index(CLEAR_LINE, boom) > boom
    assert text.endswith("half\n\033[31mtask 7 FAILED in 1.00 s\033[0m\n"), "bar kept, then the end"
    assert text.count("\n") == 4  # the error line, its details, the bar kept, the end line
