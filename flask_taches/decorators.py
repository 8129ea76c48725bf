"""``@taches.task``: a function (or a method) that knows how to add itself as a task.

The decorator returns the function itself, so calling it still calls it, and
the module attribute a runner finds by the method string is that very
function (its code is what the allowlist checks). It gets two attributes:

* ``fn.delay(**parametres)`` adds the task with these parametres and returns
  its id;
* ``fn.add(parametres=..., run_at=..., signature=..., ...)`` takes every
  option of ``taches.add``;

and its :class:`TaskOptions` under :data:`OPTIONS_ATTRIBUTE`. The method
string comes from the function (:func:`~flask_taches.methods.method_for`),
so renaming or moving it moves the tasks it adds.

Where the options live. ``queue``, ``max_attempts``, ``timeout``,
``priority``, ``unique``, ``on_success`` and ``on_failure`` are defaults of
``fn.delay``/``fn.add``: they go into the row when the task is added (an
argument of ``fn.add`` wins), and the row is what every manager reads.
``retry_on`` is about the task's own exceptions, so it is read where they
are raised: the runner resolves the method string to this function in the
task's process, and reads its options there (however the task was added,
``fn.delay`` or ``taches.add("...")``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MethodType
from typing import Any, Protocol

from .exceptions import InvalidTache, TacheError
from .methods import check_allowed, method_for

#: The attribute of a decorated function holding its :class:`TaskOptions`.
OPTIONS_ATTRIBUTE = "__taches_task__"
#: Options of ``@taches.task`` that are defaults of ``add()``.
ADD_DEFAULTS = (
    "queue",
    "max_attempts",
    "timeout",
    "priority",
    "unique",
    "on_success",
    "on_failure",
)


class Adder(Protocol):
    """What the decorator adds tasks through: the extension's ``add``."""

    def add(self, tache: Any, **options: Any) -> int: ...

    def allowed_modules(self) -> list[str]: ...


@dataclass(frozen=True)
class TaskOptions:
    """What ``@taches.task(...)`` said about a function."""

    method: str
    #: Defaults of ``add()`` (only those given).
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Exceptions that are retried; None: every exception is (the default).
    retry_on: tuple[type[BaseException], ...] | None = None

    def retries(self, exc: BaseException) -> bool:
        """Whether an attempt that raised ``exc`` may be retried."""
        return self.retry_on is None or isinstance(exc, self.retry_on)


def options_of(callable_: Any) -> TaskOptions | None:
    """The options of a decorated function (or a bound method of one), else None."""
    func = callable_.__func__ if isinstance(callable_, MethodType) else callable_
    options = getattr(func, OPTIONS_ATTRIBUTE, None)
    return options if isinstance(options, TaskOptions) else None


def decorate(adder: Adder, func: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """Give ``func`` its ``delay`` and ``add``; refused in one line when it cannot be a task."""
    raw = func.__func__ if isinstance(func, (staticmethod, classmethod)) else func
    if not inspect.isfunction(raw):
        raise InvalidTache(f"@taches.task goes on a function or a method, not {raw!r}")
    method = method_for(raw)
    allowed = _allowed_now(adder)
    if allowed is not None:
        check_allowed(method, allowed)  # MethodRefused, one line, at import time
    task_options = TaskOptions(
        method=method,
        defaults={key: options[key] for key in ADD_DEFAULTS if options.get(key) is not None},
        retry_on=_retry_on(method, options.get("retry_on")),
    )

    def add(parametres: dict[str, Any] | None = None, **add_options: Any) -> int:
        given = {**task_options.defaults, **add_options}
        if parametres is not None:
            given["parametres"] = parametres
        return adder.add(method, **given)

    def delay(**parametres: Any) -> int:
        return add(parametres)

    add.__doc__ = f"Add {method} as a task (every option of taches.add); its id."
    delay.__doc__ = f"Add {method} as a task with these parametres; its id."
    setattr(raw, OPTIONS_ATTRIBUTE, task_options)
    raw.add = add  # type: ignore[attr-defined]
    raw.delay = delay  # type: ignore[attr-defined]
    return func


def _allowed_now(adder: Adder) -> list[str] | None:
    """The allowlist when an app is at hand (an app context), else None: add() checks."""
    from flask import has_app_context

    if not has_app_context():
        return None
    try:
        return adder.allowed_modules()
    except TacheError:  # flask-taches is not on this app: add() will say
        return None


def _retry_on(method: str, value: Any) -> tuple[type[BaseException], ...] | None:
    if value is None:
        return None
    classes = tuple(value) if isinstance(value, (tuple, list, set, frozenset)) else (value,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise InvalidTache(f"{method}: retry_on takes exception classes, not {cls!r}")
    return classes
