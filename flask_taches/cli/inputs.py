"""What the task commands read from the command line: ids, parametres, dates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from ..clock import as_utc
from ..models import MAX_ID
from .errors import fail


def parse_id(text: str) -> int:
    """A task id from the command line, or a one-line refusal."""
    try:
        value = int(text)
    except ValueError:
        fail(f"{text!r} is not a task id (a positive integer)")
    if not 0 < value <= MAX_ID:
        fail(f"{text!r} is not a task id (an integer from 1 to {MAX_ID})")
    return value


class TaskId(click.ParamType):
    """The ``ID`` argument: a task id, refused in one line (not click's usage block)."""

    name = "ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        return value if isinstance(value, int) else parse_id(str(value))


TASK_ID = TaskId()


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value``: the value is JSON when it parses as JSON, else the raw string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        fail(f"-p {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_parametres(json_text: str | None, params: Sequence[str]) -> dict[str, Any]:
    """``--json`` (an object) updated by each ``-p KEY=VALUE``."""
    parametres: dict[str, Any] = {}
    if json_text is not None:
        try:
            parametres = json.loads(json_text)
        except ValueError as exc:
            fail(f"--json is not valid JSON: {exc}")
        if not isinstance(parametres, dict):
            fail(f"--json must be a JSON object, not {type(parametres).__name__}")
    for text in params:
        key, value = parse_param(text)
        parametres[key] = value
    return parametres


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time; ``Z`` means UTC and a naive one is UTC too."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--run-at {text!r} is not an ISO 8601 date-time (e.g. 2030-01-31T08:00:00+01:00)")
    return value if value.tzinfo is not None else as_utc(value)
