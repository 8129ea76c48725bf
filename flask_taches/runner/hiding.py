"""Hidden parameters never leave the task: the one mask of what the runner keeps.

A task gets its ``parametres_caches`` as they are; whatever it (or its
exception) says while it runs is masked before the runner stores or prints
it: log messages and details (the task's own, its ``logger``'s records, its
exception and traceback), debug lines, progress labels and the result. Each
hidden value is replaced by :data:`MARKER`.

The rule, so that masking never garbles unrelated text:

* every string and every number (not a boolean) found in ``parametres_caches``,
  at any depth (dict values, list items; dict keys are names, not secrets);
* only when its text has at least :data:`MIN_LENGTH` characters: ``"abc"``,
  ``1`` or ``True`` would match everywhere and say nothing;
* a string is masked as it is and as its ``repr`` and JSON forms show it
  (``'it\\'s'``, ``"a\\nb"``, ``\\u00e9``), so an exception quoting it is masked too;
* a number is masked where it stands alone, never inside a longer number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

#: What a hidden value becomes in everything the runner keeps or shows.
MARKER = "[hidden]"
#: Shorter values are not masked (they would match everywhere and hide nothing).
MIN_LENGTH = 4


class Mask:
    """Replaces the hidden values of one task in text and in JSON-like values."""

    def __init__(self, hidden: Mapping[str, Any] | None) -> None:
        texts = sorted(set(_texts(hidden)), key=len, reverse=True)  # longest first
        self._pattern = re.compile("|".join(texts)) if texts else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every hidden value replaced by :data:`MARKER`."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MARKER, text)

    def value(self, value: Any) -> Any:
        """A copy of ``value`` masked throughout (keys too); unchanged if nothing matches."""
        if self._pattern is None or value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        shown = str(value)  # a number, or whatever a task passed as details
        masked = self.text(shown)
        return value if masked == shown else masked


def _texts(value: Any) -> Iterator[str]:
    """The regular expressions of every form of every hidden value in ``value``."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, str):
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        yield from (re.escape(form) for form in forms if len(form) >= MIN_LENGTH)
    elif isinstance(value, (int, float)):
        text = repr(value)
        if len(text) >= MIN_LENGTH:
            yield rf"(?<![0-9.]){re.escape(text)}(?![0-9])"
