"""Jinja globals and the Python side of the partials.

Globals every template of the application can use:

* ``render_tache(tache_or_id, **attrs)``: the status partial wrapped in
  ``<span class="tache" data-id="…">`` that ``status.js`` keeps live;
* ``taches_script()``: the CSRF ``<meta>`` and the ``<script>`` of ``status.js``;
* ``taches_stylesheet()``: the ``<link>`` to ``taches.css``;
* ``taches_csrf_token()``: the token the action forms carry.

The partials in ``templates/taches/`` use the other ``taches_*`` helpers below
(labels, allowed actions, progress, log counts), so an application that
overrides one by name has the same building blocks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_request_context, render_template, url_for
from markupsafe import Markup, escape

from .. import auth
from ..clock import as_utc, utcnow
from ..models import LOG_LEVELS, MAX_ID, Tache, progress_percent
from ..preview import preview
from ..service import health
from ..state import app_state
from ..status import CANCELLABLE, RESTARTABLE, Status
from . import csrf, i18n, showing

#: Actions the fragment may offer, in the order of their buttons.
ACTION_ORDER = ("cancel", "restart", "delete")


def init_app(app: Flask) -> None:
    """Register the Jinja globals and filters on ``app``."""
    app.jinja_env.globals.update(
        render_tache=render_tache,
        taches_script=taches_script,
        taches_stylesheet=taches_stylesheet,
        taches_csrf_token=csrf.token,
        taches_label=i18n.status_label,
        taches_level=level_label,
        taches_text=i18n.text,
        taches_can=auth.can,
        taches_may_act=auth.may_act_on_some,
        taches_actions=allowed_actions,
        taches_progress=progress_view,
        taches_logs_count=logs_count,
        taches_last_log=last_log,
        taches_finished=is_finished,
        taches_time=format_time,
        taches_managers=health.manager_rows,
        taches_duration=i18n.duration,
        taches_language=i18n.current_language,
        **showing.globals_(),
    )
    app.jinja_env.filters["taches_json"] = to_json
    # ``taches_preview`` cuts at 300 characters unless told (``|taches_preview(200)``).
    app.jinja_env.filters["taches_preview"] = preview


# -- what the partials show -------------------------------------------------------


def is_finished(tache: Tache) -> bool:
    return Status(tache.status).is_finished


def allowed_actions(tache: Tache) -> list[str]:
    """The buttons the status fragment offers to the current user, in order.

    Cancel while the task may still change (not twice for a RUNNING task already
    asked to stop), restart once it failed, was interrupted or cancelled (as the
    bundle does), delete unless it is RUNNING; each only if :func:`auth.can`.
    """
    if not has_request_context():
        return []  # a form needs a CSRF token, and a token needs a request
    status = Status(tache.status)
    offered = {
        "cancel": status in CANCELLABLE and tache.cancel_requested_at is None,
        "restart": status in RESTARTABLE,
        "delete": status is not Status.RUNNING,
    }
    return [a for a in ACTION_ORDER if offered[a] and auth.can(tache, a)]


@dataclass(frozen=True)
class ProgressView:
    """What ``_progress.html`` draws."""

    #: 0-100, or None while the task has not said how far it is.
    percent: float | None
    step: float | None
    max: float | None
    phase: int
    phases: int
    label: str | None
    #: "about 3 min left", or None when it cannot be estimated.
    eta: str | None

    @property
    def phase_text(self) -> str | None:
        if self.phases <= 1:
            return None
        return i18n.text("progress.phase", phase=self.phase, phases=self.phases)

    @property
    def percent_attr(self) -> str:
        return "" if self.percent is None else f"{self.percent:.1f}"

    @property
    def percent_text(self) -> str:
        return "" if self.percent is None else f"{self.percent:.0f}%"


def progress_view(tache: Tache, now: datetime | None = None) -> ProgressView | None:
    """The progress bar of a task, or None when there is none to show.

    A bar shows when the task reported progress, or while it is RUNNING (then an
    indeterminate one until it reports). The time left is the time elapsed
    since ``started_at`` scaled by what remains, while it runs.
    """
    progress: Mapping[str, Any] = tache.progress or {}
    if not progress and tache.status != Status.RUNNING.value:
        return None
    step = _number(progress.get("step"))
    maximum = _number(progress.get("max"))
    phase = int(_number(progress.get("phase")) or 1)
    phases = int(_number(progress.get("phases")) or 1)
    percent = _number(progress.get("percent"))
    if percent is None and step is not None:
        percent = progress_percent(step, maximum, phase, phases)
    label = progress.get("label")
    if is_finished(tache):
        # What the task said while running ("row 200 of 300") is stale once it ended.
        done = tache.status == Status.COMPLETED.value
        label = i18n.text("progress.done" if done else "progress.stopped")
        percent = 100.0 if done else percent
    return ProgressView(
        percent=percent,
        step=step,
        max=maximum,
        phase=phase,
        phases=phases,
        label=None if label is None else str(label),
        eta=_eta(tache, percent, now or utcnow()),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _eta(tache: Tache, percent: float | None, now: datetime) -> str | None:
    if tache.status != Status.RUNNING.value or tache.started_at is None:
        return None
    if percent is None or not 0 < percent < 100:
        return None
    elapsed = (now - as_utc(tache.started_at)).total_seconds()
    if elapsed <= 0:
        return None
    remaining = elapsed * (100 - percent) / percent
    return i18n.text("eta", duration=i18n.duration(remaining))


def level_label(level: Any) -> str:
    """A log level in the current language (an unknown level as it is)."""
    key = f"level.{level}"
    return i18n.text(key) if key in i18n.MESSAGES[i18n.DEFAULT_LANGUAGE] else str(level)


def logs_count(tache: Tache) -> list[tuple[str, int]]:
    """``[(level, count), ...]`` for the levels present, in level order."""
    counts = Counter(str(entry.get("level", "info")) for entry in _logs(tache))
    known = [(level, counts.pop(level)) for level in LOG_LEVELS if level in counts]
    return known + sorted(counts.items())


def last_log(tache: Tache) -> dict[str, Any] | None:
    """The task's last log entry (a walk from the end, not a filter over every entry)."""
    for entry in reversed(tache.logs or []):
        if isinstance(entry, dict):
            return entry
    return None


def _logs(tache: Tache) -> list[dict[str, Any]]:
    logs = tache.logs or []
    return [entry for entry in logs if isinstance(entry, dict)]


def format_time(value: datetime | str | None) -> Markup:
    """``<time datetime="ISO">YYYY-MM-DD HH:MM:SS UTC</time>``, or the "none" dash."""
    if value is None:
        return Markup(escape(i18n.text("none")))
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return Markup(escape(value))
    value = as_utc(value)
    shown = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), shown)


def to_json(value: Any) -> str:
    """Pretty JSON for a ``<pre>`` (plain text: autoescaping still applies)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


# -- rendering ----------------------------------------------------------------------


def render_status(tache: Tache) -> Markup:
    """The ``_status.html`` fragment (what ``GET <prefix>/<id>/status`` answers)."""
    return Markup(render_template("taches/_status.html", tache=tache))


def render_result(tache: Tache) -> Markup:
    """The ``_result.html`` fragment: the result and the logs summary."""
    return Markup(render_template("taches/_result.html", tache=tache))


def render_tache(tache_or_id: Tache | int | str | None, **attrs: Any) -> Markup:
    """``<span class="tache" data-id="ID">`` + the status partial + ``</span>``.

    Given an id, the task is read from the database (one query: fine for a few,
    pass the ``Tache`` objects in a listing). Nothing is rendered for a task
    that does not exist or that the viewer may not see. Keyword arguments
    become attributes: ``class_="big"`` adds a class, ``result=True`` adds the
    ``_result.html`` partial (the result and the logs summary, kept live too),
    ``data_status=["RUNNING"]``
    becomes ``data-status='["RUNNING"]'`` (then the partial is only rendered
    while the task is in one of those statuses, as ``status.js`` does).
    """
    tache = _resolve(tache_or_id)
    if tache is None or not auth.can(tache, "view"):
        return Markup("")
    classes = ["tache"]
    extra: list[tuple[str, str]] = []
    shown_statuses: list[str] | None = None
    with_result = bool(attrs.pop("result", False))
    if with_result:
        extra.append(("data-result", "1"))  # status.js keeps the result live too
    for key, value in attrs.items():
        name = key.rstrip("_").replace("_", "-")
        if name == "class":
            classes.append(str(value))
            continue
        if name in ("data-id", "data-signature"):
            continue  # the identity of the element is ours to set
        if name == "data-status":
            shown_statuses = _status_filter(value)
            value = json.dumps(shown_statuses)
        extra.append((name, value if isinstance(value, str) else json.dumps(value)))
    opening = Markup('<span class="{}" data-id="{}"').format(" ".join(classes), tache.id)
    for name, value in extra:
        opening += Markup(' {}="{}"').format(name, value)
    inner = Markup("")
    if shown_statuses is None or tache.status in shown_statuses:
        inner = render_status(tache) + (render_result(tache) if with_result else Markup(""))
    return opening + Markup(">") + inner + Markup("</span>")


def _resolve(tache_or_id: Tache | int | str | None) -> Tache | None:
    if isinstance(tache_or_id, Tache):
        return tache_or_id
    if tache_or_id is None or isinstance(tache_or_id, bool):
        return None
    try:
        tache_id = int(tache_or_id)
    except (TypeError, ValueError):
        return None
    if not 0 < tache_id <= MAX_ID:
        return None
    # As the viewer, secrets not loaded: an overriding template cannot print them.
    tache: Tache | None = app_state().service.get_visible(tache_id)
    return tache


def _status_filter(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [part.strip() for part in value.split(",")]
    if isinstance(value, str):
        value = [value]
    return [str(getattr(item, "value", item)) for item in value]


def taches_script() -> Markup:
    """The CSRF ``<meta>`` and the deferred ``<script>`` of ``status.js``.

    ``data-batch-max`` tells the script ``TACHES_BATCH_MAX``, so it splits a page
    with many tasks into requests the batch route accepts; the ``*-ms`` ones its
    pace (``TACHES_JS_POLL``, ``TACHES_JS_POLL_IDLE``, ``TACHES_JS_IDLE_AFTER``).
    """
    config = current_app.config
    return Markup(
        '<meta name="taches-csrf" content="{token}">\n'
        '<script src="{src}" data-batch-url="{batch}" data-poll-ms="{poll}" '
        'data-idle-ms="{idle}" data-idle-after-ms="{idle_after}" '
        'data-batch-max="{batch_max}" defer></script>'
    ).format(
        token=csrf.token(),
        src=url_for("taches.static", filename="status.js"),
        batch=url_for("taches.batch_status"),
        poll=_ms(config["TACHES_JS_POLL"]),
        idle=_ms(config["TACHES_JS_POLL_IDLE"]),
        idle_after=_ms(config["TACHES_JS_IDLE_AFTER"]),
        batch_max=int(config["TACHES_BATCH_MAX"]),
    )


def _ms(seconds: Any) -> int:
    return int(float(seconds) * 1000)


def taches_stylesheet() -> Markup:
    """The ``<link>`` to the small stylesheet the pages and partials use."""
    return Markup('<link rel="stylesheet" href="{}">').format(
        url_for("taches.static", filename="taches.css")
    )
