"""A value as one short line of text: the web's live result, the CLI's ``show``, ``run -v``."""

from __future__ import annotations

import json
from typing import Any

#: Characters of a result (or of log details) shown before cutting.
PREVIEW = 300


def preview(value: Any, limit: int = PREVIEW) -> str:
    """Strings as they are, the rest as compact JSON, cut at ``limit`` characters with "…".

    Values come from JSON columns, so JSON almost always works; anything else
    (a circular structure) falls back to ``repr``.
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
