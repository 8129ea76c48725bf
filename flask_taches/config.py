"""Every ``TACHES_*`` setting, its type and its default, in one place.

:func:`apply_defaults` fills ``app.config`` with ``setdefault``: a key the
application set wins, then an environment variable of the same name (Flask's
CLI loads ``.env`` and ``.flaskenv`` through python-dotenv), converted to the
setting's type, then the default below. The README's settings table follows
this list, in this order.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigurationError


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "int", "float", "str", "bool", "list", "object", "json"
    default: Any
    doc: str
    optional: bool = False  # an empty environment value means None


#: The ways a manager may start a task's process (``TACHES_EXECUTOR``, ``start --executor``).
EXECUTORS = ("fork", "pool", "subprocess")
_DEFAULT_EXECUTOR = "subprocess" if sys.platform == "win32" else "fork"

SETTINGS: tuple[Setting, ...] = (
    #: Where the blueprint is mounted.
    Setting("TACHES_URL_PREFIX", "str", "/taches", "URL prefix of the blueprint."),
    #: False: the application registers ``flask_taches.blueprint`` itself (prefix, guards).
    Setting(
        "TACHES_REGISTER_BLUEPRINT",
        "bool",
        True,
        "Register the blueprint at TACHES_URL_PREFIX; False: the app does it.",
    ),
    #: Top-level packages or modules whose callables may run as tasks.
    Setting(
        "TACHES_ALLOWED_MODULES",
        "list",
        None,
        "Packages whose callables may be tasks (comma list); default: the app's own package.",
        optional=True,
    ),
    #: Rounds one ``flask taches start`` lives for, as the bundle's LOOP.
    Setting("TACHES_LOOP", "int", 10, "Rounds a manager lives for (`start --loop`)."),
    #: Seconds between rounds, as the bundle's SLEEP.
    Setting("TACHES_SLEEP", "float", 6.0, "Seconds between rounds (`start --sleep`)."),
    #: Most tasks RUNNING at once across all managers sharing the database.
    Setting("TACHES_MAX", "int", 5, "Most tasks RUNNING at once, all managers together."),
    #: Most tasks one manager runs at once (its share of the host), within TACHES_MAX.
    Setting(
        "TACHES_CONCURRENCY",
        "int",
        None,
        "Most tasks one manager runs at once, within TACHES_MAX; default: TACHES_MAX.",
        optional=True,
    ),
    #: How often a MySQL/MariaDB manager looks for new work (one read: no NOTIFY
    #: there), and how often a manager polls when nothing wakes it.
    Setting(
        "TACHES_POLL",
        "float",
        0.2,
        "Seconds between MySQL's looks for work, and between polls where nothing wakes a manager.",
    ),
    #: Where the database wakes an idle manager itself, the poll only finds what no
    #: commit announces (a global slot freed on another host); a run_at coming due
    #: is waited for exactly.
    Setting(
        "TACHES_IDLE_POLL",
        "float",
        5.0,
        "Seconds between polls of an idle manager its database wakes (file watch, "
        "LISTEN, MySQL's looks).",
    ),
    #: How the manager isolates a task: ``fork``, ``pool`` or ``subprocess``.
    Setting("TACHES_EXECUTOR", "str", _DEFAULT_EXECUTOR, "`fork`, `pool` or `subprocess`."),
    #: Tasks one child of the pool executor runs before it is replaced.
    Setting(
        "TACHES_MAX_TASKS_PER_CHILD",
        "int",
        1000,
        "Tasks a child of the `pool` executor runs before a fresh one replaces it.",
    ),
    #: Megabytes of resident memory a pool child may gain before it is replaced.
    Setting(
        "TACHES_MAX_MEMORY_PER_CHILD",
        "int",
        None,
        "MB of resident memory a `pool` child may gain since its fork before it is replaced.",
        optional=True,
    ),
    #: Queues a manager serves by default (comma list; empty means all).
    Setting("TACHES_QUEUES", "list", None, "Queues a manager serves; default: all.", True),
    #: Queue given to tasks added without one.
    Setting("TACHES_DEFAULT_QUEUE", "str", "default", "Queue of a task added without one."),
    #: Seconds between two heartbeats of a running task.
    Setting("TACHES_HEARTBEAT", "float", 5.0, "Seconds between heartbeats of a running task."),
    #: A RUNNING task silent this long is INTERRUPTED by any manager.
    Setting(
        "TACHES_HEARTBEAT_TIMEOUT",
        "float",
        30.0,
        "Seconds without heartbeat before a RUNNING task is INTERRUPTED.",
    ),
    #: Default time limit of a task in seconds; None means no limit.
    Setting("TACHES_TIMEOUT", "float", None, "Default time limit of a task (s).", True),
    #: Seconds a stopped task gets to come back before it is killed.
    Setting(
        "TACHES_KILL_GRACE",
        "float",
        5.0,
        "Seconds a stopped task gets before it is killed (SIGTERM to SIGKILL).",
    ),
    #: Seconds ``start --forever`` waits for running tasks after SIGTERM.
    Setting("TACHES_DRAIN_GRACE", "float", 30.0, "Seconds a stopping manager waits for tasks."),
    #: Days a finished task is kept after its end, per status; a status not named is kept.
    Setting(
        "TACHES_RETENTION",
        "list",
        None,
        "Days finished tasks are kept, per status (`COMPLETED=7,FAILED=30`); default: for ever.",
        optional=True,
    ),
    #: Seconds between two retention passes; one manager of all does each pass.
    Setting("TACHES_RETENTION_INTERVAL", "float", 300.0, "Seconds between two retention passes."),
    #: Tasks deleted per transaction by a retention pass.
    Setting("TACHES_RETENTION_BATCH", "int", 500, "Tasks deleted per retention transaction."),
    #: Tests: an added task runs at once in the adding process (no manager).
    Setting(
        "TACHES_EAGER",
        "bool",
        False,
        "Run each added task at once, in the adding process (for tests).",
    ),
    #: Attempts a task gets unless it says otherwise (1: no retry).
    Setting("TACHES_MAX_ATTEMPTS", "int", 1, "Attempts of a task added without max_attempts."),
    #: First retry delay in seconds; doubles each attempt, with jitter.
    Setting("TACHES_RETRY_DELAY", "float", 10.0, "First retry delay (s), doubled per attempt."),
    #: Periodic tasks ``{name: {"method": ..., "cron": ... or "every": ..., ...}}``.
    Setting(
        "TACHES_SCHEDULE",
        "json",
        None,
        "Periodic tasks: `{name: {method, cron or every, ...}}`.",
        True,
    ),
    #: Most seconds between two writes of logs/progress while a task runs.
    Setting("TACHES_FLUSH_INTERVAL", "float", 0.5, "Seconds between live writes of logs."),
    #: Largest result a task may store, in bytes of its JSON; None: no limit.
    Setting(
        "TACHES_MAX_RESULT_SIZE",
        "int",
        1024 * 1024,
        "Largest result stored, in bytes of JSON (1 MiB); over it the task ends FAILED.",
        optional=True,
    ),
    #: Most log entries kept for one task; those over it are counted, not kept.
    Setting(
        "TACHES_MAX_LOGS",
        "int",
        1000,
        "Most log entries kept per task; a last entry says how many were left out.",
    ),
    #: Whether processes a task started may outlive it (else its process group is killed).
    Setting(
        "TACHES_KEEP_TASK_PROCESSES",
        "bool",
        False,
        "Let processes a task started outlive it (default: killed with its process group).",
    ),
    #: Most tasks one batch request of status.js may ask for.
    Setting("TACHES_BATCH_MAX", "int", 200, "Most ids + signatures in one batch request."),
    #: Seconds between two polls of status.js while what a page shows changes.
    Setting("TACHES_JS_POLL", "float", 1.0, "Seconds between status.js polls while live."),
    #: Longest interval status.js backs off to when nothing has changed for a while.
    Setting("TACHES_JS_POLL_IDLE", "float", 10.0, "Slowest status.js poll, once idle (s)."),
    #: Seconds without any change before status.js starts backing off.
    Setting("TACHES_JS_IDLE_AFTER", "float", 20.0, "Seconds without change before backing off."),
    #: Folder of attached files (one sub-folder per task); default instance/taches.
    Setting("TACHES_FOLDER", "str", None, "Attached files folder; default instance/taches.", True),
    #: File extensions accepted for ``fichier``.
    Setting(
        "TACHES_ALLOWED_EXTENSIONS",
        "list",
        ["xlsx", "ods", "csv", "txt", "json", "xml", "zip", "pdf"],
        "Extensions accepted for attached files.",
    ),
    #: Largest attached file accepted, in bytes (50 MB).
    Setting(
        "TACHES_MAX_FILE_SIZE",
        "int",
        50 * 1024 * 1024,
        "Largest attached file accepted, in bytes (50 MB).",
    ),
    #: Whether anyone who reaches the blueprint may act on a task without an owner.
    Setting(
        "TACHES_SHARED_ACTIONS",
        "bool",
        False,
        "Let non-admins cancel, restart or delete tasks without an owner.",
    ),
    #: Who may frame the dashboard and task pages (CSP ``frame-ancestors``).
    Setting(
        "TACHES_FRAME_ANCESTORS",
        "str",
        "'none'",
        "CSP `frame-ancestors` of the pages (`'self'` to embed them in yours).",
    ),
    #: A bearer token a scraper may give for ``/metrics`` instead of being an admin.
    Setting(
        "TACHES_METRICS_TOKEN",
        "str",
        None,
        "Bearer token for `/metrics` (a scraper); default: admins only.",
        optional=True,
    ),
    #: Language of the labels: ``en`` or ``fr`` (Flask-Babel's locale wins).
    Setting("TACHES_LOCALE", "str", "en", "Labels language: `en` or `fr`."),
    #: Callable (or dotted path) returning the current user's identity string.
    Setting("TACHES_IDENTITY", "object", None, "Callable giving the current owner.", True),
    #: Callable (or dotted path) telling whether the current user is an admin.
    Setting("TACHES_IS_ADMIN", "object", None, "Callable: is the current user an admin?", True),
    #: Callable (or dotted path) ``(tache, action) -> bool``; replaces the default rule.
    Setting("TACHES_AUTHORIZE", "object", None, "Callable deciding who sees and acts.", True),
)

SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def convert(setting: Setting, raw: str) -> Any:
    """Turn an environment string into the setting's type, or say why not in one line."""
    text = raw.strip()
    if setting.optional and text == "":
        return None
    try:
        return _CONVERTERS[setting.kind](text)
    except ValueError as exc:
        raise ConfigurationError(
            f"{setting.name}={raw!r} is not a valid {setting.kind}: {exc}"
        ) from exc


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _to_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _to_bool,
    "list": _to_list,
    "object": str,  # a dotted path, resolved where it is used
    "json": json.loads,  # its errors are ValueErrors
}


def apply_defaults(config: dict[str, Any], environ: Mapping[str, str] | None = None) -> None:
    """Set every missing ``TACHES_*`` key from the environment or its default."""
    environ = os.environ if environ is None else environ
    for setting in SETTINGS:
        if setting.name in config:
            continue
        if setting.name in environ:
            config[setting.name] = convert(setting, environ[setting.name])
        else:
            default = setting.default
            config[setting.name] = list(default) if isinstance(default, list) else default
