"""Task callables for the tests, referenced by method strings like ``"tests.tasks:add"``.

They stay small and deterministic; the slow ones sleep in short steps so that
a stop (cancel, timeout, signal) interrupts them quickly.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select

from flask_taches import Tache

SECRET = "s3cr3t-token-never-shown"  # a parametres_caches value the tests look for
STEP = 0.05  # seconds slept per loop in the slow tasks


def add(a: int = 0, b: int = 10) -> int:
    """The tests' everyday task: added without parametres, it still runs (add() checks)."""
    return a + b


def returns_nothing() -> None:
    return None


def returns_false(tache: Tache) -> bool:
    tache.error("could not do it")
    return False


def raises(tache: Tache) -> None:
    tache.info("about to fail")
    raise ValueError("boom from the task")


def needs_missing(missing_thing: str) -> str:
    return missing_thing


def not_json() -> object:
    return {1, 2, 3}


def uses_builtins(
    tache: Tache, app: Flask, db: SQLAlchemy, logger: logging.Logger
) -> dict[str, Any]:
    logger.info("hello from %s", "the logger")
    logger.debug("a debug record")
    try:
        raise KeyError("inner")
    except KeyError:
        logger.exception("caught something")
    tache.warning("a warning", details={"k": 1})
    return {"id": tache.id, "app": app.name, "db": type(db).__name__}


def commits_own_session(tache: Tache, db: SQLAlchemy) -> str:
    """A task that uses and commits ``db.session``: its row must not be touched by it."""
    tache.status = "COMPLETED"
    tache.result = "forged"
    db.session.execute(select(Tache.id)).all()
    db.session.commit()
    return "detached" if tache not in db.session else "attached"


def uses_secret(token: str, tache: Tache, logger: logging.Logger) -> int:
    """Gets a ``parametres_caches`` value by injection, and never shows it."""
    assert token == SECRET
    assert tache.parametres_caches == {"token": SECRET}
    logger.info("got a token of %d characters", len(token))
    tache.debug("token checked")
    return len(token)


def chatty(tache: Tache, token: str, logger: logging.Logger) -> str:
    """Everything ``run -vv`` shows: log lines, debug lines, progress; and a secret."""
    assert token == SECRET
    tache.info("chatty begins")
    tache.debug("a debug line", details={"n": 1})
    for step in range(1, 4):
        tache.set_progress(step, 3, label="counting")
    logger.warning("the token has %d characters", len(token))
    return "chatted"


def slow(tache: Tache, seconds: float = 5.0, steps: int = 4) -> str:
    """Logs and reports progress, then sleeps: the one the live tests watch."""
    tache.info("slow task begins")
    tache.debug("debug line from the task")
    for step in range(1, steps + 1):
        tache.set_progress(step, steps, label=f"step {step}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(STEP)
    tache.info("slow task ends")
    return "slept"


def stubborn(seconds: float = 30.0) -> str:
    """Swallows every interruption: only the watchdog's exit ends it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(STEP)
        except BaseException:  # deliberately deaf, for the test
            continue
    return "survived"


def writes_pid(path: str) -> int:
    Path(path).write_text(str(os.getpid()))
    return os.getpid()


@functools.cache
def cached_double(n: int) -> int:
    """Wrapped by a wrapper object from functools: ``__module__`` still says here."""
    return n * 2


class Greeter:
    """An instance method task: the class is built by injecting ``__init__``."""

    def __init__(self, app: Flask, greeting: str = "hello") -> None:
        self.app = app
        self.greeting = greeting

    def greet(self, name: str, tache: Tache) -> str:
        tache.info(f"greeting {name}")
        return f"{self.greeting} {name} from {self.app.name}"


class Tools:
    factor = 3

    @staticmethod
    def double(n: int) -> int:
        return n * 2

    @classmethod
    def triple(cls, n: int) -> int:
        return n * cls.factor


class Clock:
    """A service built by a factory: it gets ``app`` injected too."""

    def __init__(self, app: Flask) -> None:
        self.app_name = app.name

    def now(self) -> str:
        return f"noon at {self.app_name}"


def uses_services(clock: Clock, greeter_prefix: str) -> str:
    return f"{greeter_prefix}: {clock.now()}"


# -- hidden parameters say nothing (issue 10) ------------------------------------------------


def _says_the_token(token: str, tache: Tache, logger: logging.Logger) -> None:
    """Put ``token`` everywhere a task can: its logs, details, logger, progress, debug."""
    tache.info(f"the token is {token}", details={"token": token, "note": f"<{token}>"})
    tache.warning("quoted", details=repr(token))
    logger.info("the logger says %s", token)
    try:
        raise RuntimeError(f"inner {token!r}")
    except RuntimeError:
        logger.exception("caught: %s", token)
    tache.set_progress(1, 2, label=f"working with {token}")
    tache.debug(f"debug {token}", details=[token])


def fingerprint(value: str) -> str:
    """Proof that a task got the real value, that does not say it."""
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()


def leaks_hidden_then_fails(token: str, tache: Tache, logger: logging.Logger) -> int:
    """Fails with ``ValueError: invalid literal for int() ... 'TOKEN'``."""
    tache.info(f"fingerprint {fingerprint(token)}")
    _says_the_token(token, tache, logger)
    return int(token)


def leaks_hidden_then_returns(token: str, tache: Tache, logger: logging.Logger) -> Any:
    """Returns the token itself, beside its fingerprint."""
    _says_the_token(token, tache, logger)
    return {"token": token, token: [token, f"x{token}x"], "fingerprint": fingerprint(token)}


# -- terminal output (issue 10) ------------------------------------------------------------

#: An OSC title change, a colour, a carriage return, a C1 CSI and DEL: none may reach a terminal.
NOISE = "\x1b]0;owned\x07\x1b[31mred\rover\x9b2J\x7f"


def noisy(tache: Tache, logger: logging.Logger) -> str:
    """Says ``NOISE`` in a log line, its details, a progress label, the logger and its result."""
    tache.info(f"message {NOISE}", details=f"line one {NOISE}\nline two")
    tache.set_progress(1, 2, label=f"label {NOISE}")
    logger.warning("logger %s", NOISE)
    tache.debug(f"debug {NOISE}")
    return f"result {NOISE}"
