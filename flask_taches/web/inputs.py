"""Reading the query string and the batch body: ids, signatures, comma lists.

Every reader here answers a bad value with :class:`BadInput` (a 400 and one
line), never with the ``ValueError`` or ``UnicodeEncodeError`` a driver or
``int()`` would raise later: a request cannot make a route answer 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import current_app, request

from ..models import taches_table
from ..service.validation import unstorable
from .answers import BadInput

#: The most digits an id may have: far beyond any id (``MAX_ID`` has 10), far below the
#: 4300 digits past which ``int()`` and ``str()`` refuse to convert (a ``ValueError``).
ID_DIGITS = 40
#: ASCII digits only (``int()`` would take "²" too, and fail), and not thousands of them.
INTEGER = re.compile(rf"-?[0-9]{{1,{ID_DIGITS}}}")
#: A part of a comma list that :func:`split_commas` drops: blank between two commas.
_BLANK_PART = re.compile(r"(?<![^,])\s*(?![^,])")
#: The endpoint whose input :func:`check_batch_size` counts before the view reads it.
BATCH_ENDPOINT = "taches.batch_status"
#: The most bytes one item of a JSON batch takes: the longest signature, each character
#: written as two ``\\u`` escapes of four hex digits, its quotes and comma (an id takes far less).
_BATCH_ITEM_BYTES = 12 * int(getattr(taches_table.c.signature.type, "length", None) or 255) + 3


def check_request() -> None:
    """What the blueprint refuses before any view reads the request (its ``before_request``).

    A NUL anywhere in the query string or the form: PostgreSQL cannot compare
    a column with it (a driver error). And a batch past ``TACHES_BATCH_MAX``,
    counted before a single id is parsed.
    """
    for source in (request.args, request.form):
        for key, value in source.items(multi=True):
            refuse_unstorable("the query string" if source is request.args else "the form", key)
            refuse_unstorable(key[:40], value)
    if request.endpoint == BATCH_ENDPOINT:
        check_batch_size(int(current_app.config["TACHES_BATCH_MAX"]))


def check_batch_size(limit: int) -> None:
    """Refuse more than ``limit`` ids and signatures without building their lists.

    A comma list is counted by string scans; a JSON body longer than ``limit``
    items can be is refused unread, and a shorter one is parsed once (Werkzeug
    keeps it for the view) with its nesting bounded by the parser.
    """
    if request.method == "POST" and request.is_json:
        ids, signatures = _json_counts(limit)
    else:
        source = request.form if request.method == "POST" else request.args
        ids = count_commas_parts(source.getlist("ids"))
        signatures = count_commas_parts(source.getlist("signatures"))
    if ids + signatures > limit:
        raise BadInput(
            f"{ids} ids + {signatures} signatures: "
            f"at most {limit} (TACHES_BATCH_MAX) in one request"
        )


def _json_counts(limit: int) -> tuple[int, int]:
    size = request.content_length or 0
    most = limit * _BATCH_ITEM_BYTES + 1024
    if size > most:
        raise BadInput(f"a batch body of {size} bytes: at most {most} for {limit} items")
    try:
        body = request.get_json(silent=True)  # not JSON: the view says what it expects
    except RecursionError:
        raise BadInput("the JSON body is nested too deep") from None
    if not isinstance(body, dict):
        return 0, 0
    ids, signatures = (body.get(key) for key in ("ids", "signatures"))
    return (
        len(ids) if isinstance(ids, list) else 0,
        len(signatures) if isinstance(signatures, list) else 0,
    )


def split_commas(values: Iterable[str]) -> list[str]:
    """``["1,2", " 3 "]`` -> ``["1", "2", "3"]`` (blanks dropped)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def count_commas_parts(values: Iterable[str]) -> int:
    """How many parts :func:`split_commas` would give, without building them.

    Counted by C-speed string scans (commas, then blank parts), so a request
    of five million ids is measured, and refused, before a single one is parsed.
    """
    return sum(value.count(",") + 1 - _blank_parts(value) for value in values)


def _blank_parts(value: str) -> int:
    """How many parts of ``value`` are blank (the quick answer first: none, for ``1,2,3``)."""
    spaceless = " " not in value and value.isprintable()  # no whitespace of any kind
    if spaceless and value and ",," not in value and value[0] != "," and value[-1] != ",":
        return 0
    return _BLANK_PART.subn("", value)[1]


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
        if abs(value) >= 10**ID_DIGITS:
            raise BadInput(f"id of more than {ID_DIGITS} digits: not a task id")
        return value
    if isinstance(value, str) and INTEGER.fullmatch(value.strip()):
        return int(value)
    raise BadInput(f"id {shown(value)} is not an integer")


def parse_signature(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput(f"signature {shown(value)} is not a string")
    refuse_unstorable("signature", value)
    return value


def refuse_unstorable(name: str, value: str) -> None:
    """:class:`BadInput` for a NUL or a lone surrogate, which no database column stores."""
    problem = unstorable(value)
    if problem:
        raise BadInput(f"{name} {problem}")


def shown(value: Any) -> str:
    """A short ``repr`` of any input, for an error line.

    Only strings and numbers are shown, cut to 40 characters: the ``str()`` of a
    list nested a thousand deep would raise ``RecursionError`` instead.
    """
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) < 10**ID_DIGITS else f"of more than {ID_DIGITS} digits"
    return f"of type {type(value).__name__}"
