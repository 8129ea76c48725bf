"""Callables of an allowed package whose code comes from elsewhere: each must be refused.

Their ``__module__`` says ``tests.evil_tasks``, but what would run when the
task is called (or its class built) is code of ``subprocess``, ``os``,
``contextlib``, ``dict`` or ``enum``. The allowlist looks at that code, not at
the name the object carries.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


class Evil(subprocess.Popen):  # type: ignore[type-arg]
    """Building it runs ``Popen.__init__``: a command of the task's ``parametres``."""


class EvilService(subprocess.Popen):  # type: ignore[type-arg]
    """An instance method of a class built by a foreign constructor."""

    def run(self) -> str:
        return "ran"


class BorrowedInit:
    """A constructor taken from elsewhere and set on the class."""

    __init__ = subprocess.Popen.__init__

    def run(self) -> str:
        return "ran"


class CDict(dict):  # type: ignore[type-arg]
    """A constructor written in C."""


class Colour(enum.Enum):
    """Calling it runs the metaclass's ``__call__``, from ``enum``."""

    RED = "red"


class ForeignCall:
    """An instance whose ``__call__`` is ``os.system``."""

    __call__ = staticmethod(os.system)


foreign_call = ForeignCall()
system_partial = functools.partial(os.system, "true")


@contextlib.contextmanager
def managed() -> Iterator[None]:
    """Decorated by a wrapper of ``contextlib``, whose ``__module__`` it copied."""
    yield


class OwnCall:
    """A callable instance whose ``__call__`` is defined here: accepted."""

    def __call__(self, n: int) -> int:
        return n + 1


own_call = OwnCall()


@dataclass
class Report:
    """A dataclass: its generated ``__init__`` is this module's code, accepted."""

    n: int = 1

    def build(self) -> int:
        return self.n * 2
