"""A new task's row: the caller's input checked, completed with the app's defaults.

``add()``, ``add_many()`` and ``chain()`` turn each task (a :class:`Tache` or
a method string) into a :class:`NewRow`, plain column values the store
inserts. Everything a new row is checked against (the defaults, the
allowlist, the methods already accepted) is read once per call into
:class:`NewRowRules`, not once per row: a bulk add of a thousand rows asks
the app's settings once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm.attributes import instance_dict

from .. import auth
from ..clock import as_utc, utcnow
from ..exceptions import InvalidTache
from ..methods import MethodCheck, method_for
from ..models import Tache, taches_table
from ..provided import check_provided
from ..state import AppState
from ..status import Status
from .json_values import json_object
from .validation import validate

#: Keyword arguments ``add()`` copies onto the task when given.
TACHE_OPTIONS = (
    "parametres",
    "parametres_caches",
    "signature",
    "run_at",
    "priority",
    "queue",
    "max_attempts",
    "timeout",
    "on_success",
    "on_failure",
)
#: Options naming a callable of the app, checked as the method is (allowlist, import).
HOOK_OPTIONS = ("on_success", "on_failure")
#: ``owner`` not given: the current user's identity (a given ``None`` means "no owner").
OWNER_UNSET: Any = object()

_OPTION_SET = frozenset(TACHE_OPTIONS)
_TO_RUN = Status.TO_RUN.value
_NEW_STATUSES = (Status.TO_RUN.value, Status.WAITING.value)
#: Columns every new row sets, whatever it was built from (one compiled INSERT).
_BASE_COLUMNS = (
    "method",
    "parametres",
    "parametres_caches",
    "signature",
    "owner",
    "status",
    "logs",
    "created_at",
    "run_at",
    "priority",
    "queue",
    "attempts",
    "max_attempts",
    "timeout",
)
#: A method string's row before options: what ``Tache(method=...)`` would hold.
_BLANK: dict[str, Any] = {key: None for key in _BASE_COLUMNS if key != "method"}
#: Set by ``add(..., unique=True)`` and by the database, never by a caller's Tache.
_KEYS = ("unique_key", "live_key")
_OTHER_COLUMNS = frozenset(taches_table.c.keys()) - {"id", *_KEYS, *_BASE_COLUMNS}


@dataclass
class NewRow:
    """A task about to be inserted: its column values, and the caller's object if any.

    ``fichier`` is the file to copy into the task's folder once its id is
    known (a ``FileStorage`` or a path); the ``fichier`` column then gets the
    copy's safe name, never what the caller put there.
    """

    values: dict[str, Any]
    tache: Tache | None = None
    fichier: Any = None


@dataclass(frozen=True)
class NewRowRules:
    """What a new row is checked against and completed with, read once per call."""

    queue: str
    max_attempts: int
    timeout: float | None
    allowed_modules: list[str]
    checked_methods: MethodCheck
    #: The registered services' names: parameters they provide.
    services: frozenset[str] = frozenset()

    @classmethod
    def of(cls, state: AppState) -> NewRowRules:
        cfg = state.config
        return cls(
            queue=cfg["TACHES_DEFAULT_QUEUE"],
            max_attempts=cfg["TACHES_MAX_ATTEMPTS"],
            timeout=cfg["TACHES_TIMEOUT"],
            allowed_modules=state.allowed_modules,
            checked_methods=state.checked_methods,
            services=frozenset(state.hooks.services),
        )

    def check_method(self, method: str) -> None:
        """Refuse a method outside the allowlist or that does not resolve."""
        self.checked_methods.check(method, self.allowed_modules)


def prepare(
    tache: Tache | str,
    rules: NewRowRules,
    *,
    owner: Any = OWNER_UNSET,
    options: dict[str, Any] | None = None,
    previous: bool = False,
) -> NewRow:
    """The checked column values of a new task (no ORM work for a method string).

    ``previous``: the task follows others (a chain, a group), which give it
    its parameter ``previous``.
    """
    options = options or {}
    unknown = set(options) - _OPTION_SET
    if unknown:
        raise InvalidTache(f"unknown option(s) for add(): {', '.join(sorted(unknown))}")
    values, source = _starting_values(tache)
    # Tache(fichier=...) is a file to copy, like add(fichier=...), not a name to store.
    fichier = values.pop("fichier", None)
    values.update(options)
    rules.check_method(values["method"])
    for hook in HOOK_OPTIONS:
        if callable(values.get(hook)):
            values[hook] = method_for(values[hook])  # a function: the string that names it
        if values.get(hook) is not None:
            rules.check_method(values[hook])
    values["parametres"] = json_object("parametres", values["parametres"])
    values["parametres_caches"] = (
        json_object("parametres_caches", values["parametres_caches"]) or None
    )
    check_provided(
        values["method"],
        rules.allowed_modules,
        rules.services,
        (values["parametres"], values["parametres_caches"]),
        previous=previous,
    )
    if owner is not OWNER_UNSET:
        values["owner"] = owner
    elif values["owner"] is None:
        values["owner"] = auth.current_owner()
    _complete(values, rules)
    validate(values)  # what every database can store
    return NewRow(values, source, fichier)


def _starting_values(tache: Tache | str) -> tuple[dict[str, Any], Tache | None]:
    """The column values the caller gave, and the object to adopt afterwards."""
    if isinstance(tache, str):
        return {"method": tache, **_BLANK}, None
    if isinstance(tache, Tache):
        if tache.id is not None:
            raise InvalidTache(f"task {tache.id} is already saved")
        return _values_of(tache), tache
    raise InvalidTache(f"add() takes a Tache or a method string, not {type(tache).__name__}")


def _values_of(tache: Tache) -> dict[str, Any]:
    """A caller's :class:`Tache` as column values (other columns it set included)."""
    given = instance_dict(tache)  # what was set; an unset column reads None
    if any(given.get(key) is not None for key in _KEYS):
        raise InvalidTache("a unique task is added with add(..., signature=S, unique=True)")
    values = {key: given.get(key) for key in _BASE_COLUMNS}
    for key in _OTHER_COLUMNS.intersection(given):
        if given[key] is not None:
            values[key] = given[key]
    return values


def _complete(values: dict[str, Any], rules: NewRowRules) -> None:
    """Fill and check the columns a caller may leave out."""
    now = utcnow()
    status = values["status"] or _TO_RUN
    if status not in _NEW_STATUSES:
        raise InvalidTache(f"a new task is TO_RUN or WAITING, not {status}")
    values["status"] = Status(status).value
    values["created_at"] = now
    run_at = values["run_at"]
    values["run_at"] = _run_at_utc(run_at) if run_at is not None else now
    values["queue"] = values["queue"] or rules.queue
    values["priority"] = int(values["priority"] or 0)
    values["attempts"] = 0
    values["max_attempts"] = _max_attempts(values["max_attempts"], rules.max_attempts)
    values["timeout"] = _timeout(values["timeout"], rules.timeout)
    values["logs"] = list(values["logs"] or [])


def _run_at_utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidTache(f"run_at must be a datetime, not {type(value).__name__}")
    return as_utc(value)


def _max_attempts(given: Any, default: int) -> int:
    max_attempts = int(default if given is None else given)
    if max_attempts < 1:
        raise InvalidTache("max_attempts must be at least 1")
    return max_attempts


def _timeout(given: Any, default: float | None) -> float | None:
    timeout: float | None = default if given is None else given
    if timeout is not None and not timeout > 0:
        raise InvalidTache("timeout must be a positive number of seconds")
    return timeout
