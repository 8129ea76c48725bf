"""Reading the query string and the batch body: ids, signatures, comma lists."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .answers import BadInput

#: ASCII digits only: ``int()`` would take "²" too, and fail.
INTEGER = re.compile(r"-?[0-9]+")


def split_commas(values: Iterable[str]) -> list[str]:
    """``["1,2", " 3 "]`` -> ``["1", "2", "3"]`` (blanks dropped)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def as_list(value: Any, name: str) -> list[Any]:
    """A JSON body's list field (missing: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInput(f"{name} must be a list")
    return value


def parse_id(value: Any) -> int:
    """An integer id from JSON or text (its range is checked where it is used)."""
    if isinstance(value, bool):
        raise BadInput(f"id {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        return int(value)
    raise BadInput(f"id {str(value)[:40]!r} is not an integer")


def parse_signature(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"signature {str(value)[:40]!r} is not a string")
    return value
