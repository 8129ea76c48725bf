"""The live fragments of many tasks, and a finished task's fragments rendered once.

The batch route and the dashboard render the same partials for up to 200
tasks a request. :class:`Fragments` looks the templates up and runs the
context processors once per request, not once per task.

A finished task's fragments no longer change: its status, result, logs and
progress are final until a restart makes it unfinished again (and its next
end brings a new ``ended_at``). Yet a page's first poll, a signature's
latest task and every dashboard view render them again. So their renders
are kept (:class:`Kept`, a bounded LRU per application), keyed by all they
depend on:

* the task: id, status, ``ended_at``, attempts and the number of log entries
  read (a listing that did not read the logs is another key);
* the viewer: identity, admin or not, language, the buttons offered, and the
  URL root; a render is only ever served to the same identity;
* the partial (status, status in a row, result, row cells).

The CSRF token of the buttons is not in a kept render: it holds a random
placeholder of this process, replaced with the viewer's own token each time
it is served, so one viewer's token never reaches another.

Only the extension's own partials are kept: an application that overrides
one (``templates/taches/_actions.html``, say) may show anything, the user's
name or the time, so its renders are never kept; nor while templates
reload (debug).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from flask import Flask, current_app, request
from jinja2 import Template
from markupsafe import Markup

from .. import auth
from ..models import Tache
from ..status import Status
from . import csrf, i18n
from .showing import logs_loaded
from .templating import allowed_actions

#: Renders kept per application (a few hundred bytes to a few KB each).
KEPT = 4096
#: Every partial a kept fragment is made of: all must be the extension's own.
PARTS = (
    "taches/_status.html",
    "taches/_progress.html",
    "taches/_actions.html",
    "taches/_result.html",
    "taches/_logs_summary.html",
    "taches/_row_cells.html",
)
OWN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: What a kept render holds where the viewer's CSRF token goes (random per process).
TOKEN_PLACEHOLDER = f"taches-token-{secrets.token_hex(16)}"


class Kept:
    """A bounded map of renders, least recently used out first, shared by threads."""

    def __init__(self, size: int = KEPT) -> None:
        self.size = size
        self._renders: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            found = self._renders.get(key)
            if found is not None:
                self._renders.move_to_end(key)
            return found

    def put(self, key: Hashable, render: str) -> None:
        with self._lock:
            self._renders[key] = render
            self._renders.move_to_end(key)
            while len(self._renders) > self.size:
                self._renders.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._renders.clear()

    def __len__(self) -> int:
        return len(self._renders)


_kept: WeakKeyDictionary[Flask, Kept] = WeakKeyDictionary()
_own: WeakKeyDictionary[Flask, bool] = WeakKeyDictionary()


def kept_renders(app: Flask) -> Kept:
    """The application's kept renders."""
    found = _kept.get(app)
    if found is None:
        found = _kept.setdefault(app, Kept())
    return found


def _keeps(app: Flask) -> bool:
    """Whether renders may be kept: the extension's own partials, templates not reloading."""
    if app.jinja_env.auto_reload:
        return False
    if app not in _own:
        env = app.jinja_env
        _own[app] = all(_is_own(env.get_template(name)) for name in PARTS)
    return _own[app]


def _is_own(template: Template) -> bool:
    return template.filename is not None and Path(template.filename).resolve().is_relative_to(
        OWN_TEMPLATES
    )


class Fragments:
    """The live fragments of many tasks, for one request (the batch route, the dashboard).

    ``render_template`` looks the template up and runs the context processors
    on every call; for a batch of 50 tasks, that was most of the answer's
    time. Here both happen once per request, then each task is one render,
    or none for a finished task rendered before.
    """

    def __init__(self) -> None:
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        env = app.jinja_env
        self._templates = {
            "status": env.get_template("taches/_status.html"),
            "result": env.get_template("taches/_result.html"),
            "row": env.get_template("taches/_row_cells.html"),
        }
        self._context: dict[str, Any] = {}
        app.update_template_context(self._context)
        self._kept = kept_renders(app) if _keeps(app) else None
        self._viewer: tuple[Any, ...] | None = None

    def status(self, tache: Tache) -> Markup:
        return self._render("status", tache)

    def result(self, tache: Tache) -> Markup:
        return self._render("result", tache)

    def row(self, tache: Tache) -> Markup:
        """The cells of one dashboard row."""
        return self._render("row", tache)

    def _render(self, name: str, tache: Tache) -> Markup:
        key = self._key(name, tache)
        if key is None:
            return Markup(self._templates[name].render({**self._context, "tache": tache}))
        assert self._kept is not None
        render = self._kept.get(key)
        if render is None:
            context = {**self._context, "tache": tache, "taches_csrf_token": _placeholder}
            render = self._templates[name].render(context)
            self._kept.put(key, render)
        if TOKEN_PLACEHOLDER in render:
            render = render.replace(TOKEN_PLACEHOLDER, str(Markup.escape(csrf.token())))
        return Markup(render)

    def _key(self, name: str, tache: Tache) -> Hashable | None:
        """What the render depends on; None when it may not be kept."""
        if self._kept is None or not Status(tache.status).is_finished:
            return None
        logs = len(tache.logs or []) if logs_loaded(tache) else None
        actions = () if name == "result" else tuple(allowed_actions(tache))
        if self._viewer is None:  # the same for every task of the request
            viewer = (auth.current_owner(), auth.is_admin(), i18n.current_language())
            self._viewer = (*viewer, request.script_root)
        return (
            name,
            (tache.id, tache.status, tache.ended_at, tache.attempts, logs),
            self._viewer,
            actions,
        )


def _placeholder() -> str:
    return TOKEN_PLACEHOLDER
