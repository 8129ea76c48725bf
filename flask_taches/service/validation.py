"""Is a new task's row storable on every database? One check, one-line errors.

SQLite stores a 300-character signature, a priority of 10**12 or an infinite
timeout without a word; PostgreSQL and MySQL/MariaDB refuse them with a
driver error (a traceback, and a 500 in a view). :func:`validate` holds each
column to what the strictest of them accepts, from the table itself: no
string holds a NUL (PostgreSQL refuses it) or a lone surrogate (not UTF-8).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Float, Integer, String

from ..exceptions import InvalidTache
from ..models import taches_table

#: What a 32-bit signed INTEGER column holds (PostgreSQL's and MySQL's ``INT``).
INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
#: Largest magnitude a FLOAT column holds (single precision on MySQL/MariaDB).
FLOAT_MAX = 3.4e38
#: Characters no database stores in text: NUL (PostgreSQL, in text and in JSONB) and
#: lone surrogates (no driver encodes them to UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def validate(values: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidTache` (one line) for a value its column cannot store.

    ``values`` are a new row's column values: strings within their column's
    length, integers within INTEGER's range, numbers finite and within FLOAT's.
    """
    for key, value in values.items():
        if value is None or key not in taches_table.c:
            continue
        column_type = taches_table.c[key].type
        if isinstance(column_type, String) and column_type.length is not None:
            _check_length(key, value, column_type.length)
        elif isinstance(column_type, Integer):
            _check_integer(key, value)
        elif isinstance(column_type, Float):
            _check_number(key, value)


def _check_length(key: str, value: Any, length: int) -> None:
    if not isinstance(value, str):
        raise InvalidTache(f"{key} must be a string, not {type(value).__name__}")
    if len(value) > length:
        raise InvalidTache(f"{key} is {len(value)} characters long; at most {length}")
    problem = unstorable(value)
    if problem:
        raise InvalidTache(f"{key} {problem}")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored on every database (``None``: it can)."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return f"holds the character {found.group()!r}, which no database stores"


def _check_integer(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTache(f"{key} must be an integer, not {type(value).__name__}")
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidTache(f"{key}={value} is out of range ({INT_MIN} to {INT_MAX})")


def _check_number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTache(f"{key} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidTache(f"{key}={value} is not a finite number")
    if abs(value) > FLOAT_MAX:
        raise InvalidTache(f"{key}={value:g} is out of range (at most {FLOAT_MAX:g})")
