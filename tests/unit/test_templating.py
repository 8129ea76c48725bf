"""Jinja globals and the partials' helpers: render_tache, taches_script, progress, logs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, render_template_string
from markupsafe import Markup

from flask_taches import ConfigurationError, Tache
from flask_taches.clock import utcnow
from flask_taches.web import templating
from tests.app import taches
from tests.web import USERS, make

pytestmark = pytest.mark.taches_config(**USERS)


def tache(**fields: Any) -> Tache:
    """An unsaved task with an id, as a page would hold one."""
    fields.setdefault("id", 7)
    fields.setdefault("method", "tests.tasks:add")
    return Tache(**fields)


# -- render_tache ---------------------------------------------------------------------------


def test_render_tache_wraps_the_status_fragment(app: Flask) -> None:
    tache_id = make(app)
    with app.test_request_context():
        item = taches.get(tache_id)
        markup = templating.render_tache(item)
        fragment = templating.render_status(item)
    assert isinstance(markup, Markup)
    opening = Markup(f'<span class="tache" data-id="{tache_id}">')
    assert markup == opening + fragment + Markup("</span>")
    assert 'data-status="TO_RUN"' in fragment


def test_render_tache_by_id_reads_the_task(app: Flask) -> None:
    tache_id = make(app, status="FAILED")
    with app.test_request_context():
        assert 'data-status="FAILED"' in templating.render_tache(tache_id)
        assert 'data-status="FAILED"' in templating.render_tache(str(tache_id))


@pytest.mark.parametrize("value", [999, "abc", None, True, -1, 0, 2**80, 1.5j])
def test_render_tache_renders_nothing_for_what_does_not_exist(app: Flask, value: Any) -> None:
    make(app)
    with app.test_request_context():
        assert templating.render_tache(value) == Markup("")


def test_render_tache_renders_nothing_for_another_users_task(app: Flask) -> None:
    tache_id = make(app, owner="alice")
    with app.test_request_context(headers={"X-User": "bob"}):
        assert templating.render_tache(tache_id) == Markup("")
    with app.test_request_context(headers={"X-User": "alice"}):
        assert f'data-id="{tache_id}"' in templating.render_tache(tache_id)


def test_render_tache_attributes(app: Flask) -> None:
    item = tache(status="RUNNING", started_at=utcnow())
    with app.test_request_context():
        markup = templating.render_tache(
            item, class_="big", title='say "hi"', data_id=99, aria_live="polite"
        )
    assert markup.startswith(
        '<span class="tache big" data-id="7" title="say &#34;hi&#34;" aria-live="polite">'
    )


def test_render_tache_status_filter_hides_the_content_as_status_js_does(app: Flask) -> None:
    shown = tache(status="RUNNING")
    hidden = tache(status="COMPLETED")
    with app.test_request_context():
        visible = templating.render_tache(shown, data_status=["TO_RUN", "RUNNING"])
        empty = templating.render_tache(hidden, data_status='["TO_RUN","RUNNING"]')
        comma = templating.render_tache(hidden, data_status="COMPLETED, FAILED")
    attribute = 'data-status="[&#34;TO_RUN&#34;, &#34;RUNNING&#34;]"'
    assert visible.startswith(
        f'<span class="tache" data-id="7" {attribute}><div class="tache-status'
    )
    assert empty == Markup(f'<span class="tache" data-id="7" {attribute}></span>')
    assert 'data-status="COMPLETED"' in comma


def test_render_tache_in_an_app_template(app: Flask) -> None:
    first = make(app)
    second = make(app, status="COMPLETED")
    with app.test_request_context():
        html = render_template_string(
            "{% for t in ids %}{{ render_tache(t) }}{% endfor %}", ids=[first, second]
        )
    assert html.count('<span class="tache" data-id=') == 2
    assert "&lt;" not in html  # Markup: not escaped a second time


def test_outside_a_request_no_action_is_offered(app: Flask) -> None:
    tache_id = make(app)
    with app.app_context():
        markup = templating.render_tache(tache_id)
    assert 'data-status="TO_RUN"' in markup
    assert "<form" not in markup


# -- taches_script, taches_stylesheet, the token -------------------------------------------


@pytest.mark.taches_config(
    TACHES_JS_POLL=2.5, TACHES_URL_PREFIX="/jobs", TACHES_BATCH_MAX=40, **USERS
)
def test_taches_script_points_at_the_blueprint(app: Flask) -> None:
    with app.test_request_context():
        script = templating.taches_script()
        token = templating.csrf.token()
        stylesheet = templating.taches_stylesheet()
    assert script == Markup(
        f'<meta name="taches-csrf" content="{token}">\n'
        '<script src="/jobs/static/status.js" data-batch-url="/jobs/status" '
        'data-poll-ms="2500" data-idle-ms="10000" data-idle-after-ms="20000" '
        'data-batch-max="40" defer></script>'
    )
    assert stylesheet == Markup('<link rel="stylesheet" href="/jobs/static/taches.css">')


def test_the_globals_are_registered(app: Flask) -> None:
    with app.test_request_context():
        html = render_template_string(
            "{{ taches_stylesheet() }}|{{ taches_script() }}|{{ taches_csrf_token() }}"
        )
    stylesheet, script, token = html.split("|")
    assert stylesheet.startswith("<link")
    assert f'content="{token}"' in script  # one token per request


def test_without_a_secret_key_the_token_says_what_to_do(app: Flask) -> None:
    app.secret_key = None
    with app.test_request_context(), pytest.raises(ConfigurationError, match="SECRET_KEY"):
        templating.csrf.token()


@pytest.mark.parametrize("path", ["status.js", "taches.css"])
def test_static_files_are_served(app: Flask, path: str) -> None:
    with app.test_client().get(f"/taches/static/{path}") as response:
        assert response.status_code == 200
        assert len(response.get_data()) > 500


# -- progress -------------------------------------------------------------------------------


def test_progress_percent_phase_label_and_time_left(app: Flask) -> None:
    now = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
    item = tache(
        status="RUNNING",
        started_at=now - timedelta(seconds=60),
        progress={"step": 1, "max": 4, "phase": 1, "phases": 1, "label": "rows"},
    )
    with app.app_context():
        view = templating.progress_view(item, now=now)
    assert view is not None
    assert (view.percent, view.percent_attr, view.percent_text) == (25.0, "25.0", "25%")
    assert view.phase_text is None
    assert view.label == "rows"
    assert view.eta == "about 3 min left"  # 60 s for 25 %: 180 s to go


@pytest.mark.taches_config(TACHES_LOCALE="fr", **USERS)
def test_progress_with_phases_in_french(app: Flask) -> None:
    now = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
    # phase 2 of 3, half way: (1/2)/3 + 1/3 = 50 %
    item = tache(
        status="RUNNING",
        started_at=now - timedelta(seconds=20),
        progress={"step": 5, "max": 10, "phase": 2, "phases": 3},
    )
    with app.app_context():
        view = templating.progress_view(item, now=now)
    assert view is not None
    assert view.percent == 50.0
    assert view.phase_text == "phase 2/3"
    assert view.eta == "environ 20 s restantes"


def test_progress_rendering(app: Flask) -> None:
    item = tache(
        status="RUNNING",
        started_at=utcnow() - timedelta(hours=1),
        progress={"step": 42, "max": 100, "phase": 1, "phases": 2, "label": "<b>rows</b>"},
    )
    with app.test_request_context():
        html = templating.render_status(item)
    assert '<div class="tache-progress" data-percent="21.0">' in html
    assert '<div class="tache-progress__bar" style="width: 21.0%"></div>' in html
    assert '<span class="tache-progress__percent">21%</span>' in html
    assert '<span class="tache-progress__phase">phase 1/2</span>' in html
    assert '<span class="tache-progress__label">&lt;b&gt;rows&lt;/b&gt;</span>' in html
    assert '<span class="tache-progress__eta">about 3 h 46 left</span>' in html


def test_running_without_progress_shows_an_indeterminate_bar(app: Flask) -> None:
    with app.test_request_context():
        html = templating.render_status(tache(status="RUNNING", started_at=utcnow()))
    assert '<div class="tache-progress tache-progress--indeterminate" data-percent="">' in html
    assert "style=" not in html
    assert "tache-progress__eta" not in html


def test_no_bar_without_progress_unless_running(app: Flask) -> None:
    with app.test_request_context():
        assert "tache-progress" not in templating.render_status(tache(status="TO_RUN"))
        done = templating.render_status(
            tache(status="COMPLETED", progress={"step": 4, "max": 4, "percent": 100.0})
        )
    assert 'data-percent="100.0"' in done
    assert "tache-progress__eta" not in done


@pytest.mark.parametrize(
    "progress",
    [
        {"step": 0, "max": 10},  # 0 %: nothing to scale
        {"step": 10, "max": 10},  # 100 %: done, nothing left
        {"step": 3},  # no max: no percent
        {"step": "x", "max": "y"},  # garbage from a hand-written row
    ],
)
def test_no_time_left_when_it_cannot_be_estimated(app: Flask, progress: dict[str, Any]) -> None:
    item = tache(status="RUNNING", started_at=utcnow() - timedelta(minutes=5), progress=progress)
    with app.app_context():
        view = templating.progress_view(item)
    assert view is not None and view.eta is None


def test_progress_written_by_set_progress_renders(app: Flask) -> None:
    item = tache(status="RUNNING", started_at=utcnow())
    item.set_progress(3, max=12, phase=1, phases=1, label="files")
    with app.app_context():
        view = templating.progress_view(item)
    assert view is not None and view.percent == 25.0 and view.label == "files"


# -- logs -------------------------------------------------------------------------------------


def _entry(level: str, message: str = "m", details: Any = None) -> dict[str, Any]:
    return {"level": level, "message": message, "details": details, "at": "2024-01-01T00:00:00"}


def test_logs_count_per_level_in_level_order(app: Flask) -> None:
    item = tache(
        logs=[_entry("error"), _entry("info"), _entry("custom"), _entry("error"), "not a dict"]
    )
    assert templating.logs_count(item) == [("info", 1), ("error", 2), ("custom", 1)]
    with app.test_request_context():
        html = templating.render_result(item)
    assert 'data-level="error" data-count="2"' in html
    assert '<p class="tache-logs-summary__last tache-log--error">m</p>' in html


def test_result_fragment_shows_the_result_once_completed(app: Flask) -> None:
    long_result = {"rows": list(range(500))}
    with app.test_request_context():
        done = templating.render_result(tache(status="COMPLETED", result=long_result))
        failed = templating.render_result(tache(status="FAILED", result="partial"))
    value = done.split('<p class="tache-result__value">')[1].split("</p>")[0]
    assert value.startswith("{&#34;rows&#34;: [0, 1, 2")
    assert value.endswith("…") and len(value) < 600
    assert "partial" not in failed


def test_full_logs_partial_with_details(app: Flask) -> None:
    item = tache(logs=[_entry("warning", "two\nlines", {"k": [1, 2]}), _entry("info", "plain")])
    with app.test_request_context():
        html = render_template_string('{% include "taches/_logs.html" %}', tache=item)
    assert '<li class="tache-log tache-log--warning">' in html
    assert '<span class="tache-log__message">two\nlines</span>' in html
    assert "<pre>{\n  &#34;k&#34;: [\n    1,\n    2\n  ]\n}</pre>" in html
    assert html.count("<details") == 1
    with app.test_request_context():
        empty = render_template_string('{% include "taches/_logs.html" %}', tache=tache())
    assert "No log yet." in empty


# -- small helpers ----------------------------------------------------------------------------


def test_format_time(app: Flask) -> None:
    with app.app_context():
        naive = templating.format_time(datetime(2024, 5, 1, 8, 30, 5))
        text = templating.format_time("2024-05-01T10:30:05+02:00")
        none = templating.format_time(None)
        junk = templating.format_time("<b>")
    expected = '<time datetime="2024-05-01T08:30:05+00:00">2024-05-01 08:30:05 UTC</time>'
    assert naive == text == Markup(expected)
    assert none == Markup("—")
    assert junk == Markup("&lt;b&gt;")


def test_preview_and_json() -> None:
    assert templating.preview("short") == "short"
    assert templating.preview({"a": 1}) == '{"a": 1}'
    assert templating.preview("x" * 400, 10) == "x" * 9 + "…"
    assert json.loads(templating.to_json({"b": [1], "a": "é"})) == {"a": "é", "b": [1]}


def test_render_tache_of_an_id_beyond_the_integer_column_is_nothing(any_db_app: Flask) -> None:
    with any_db_app.test_request_context():
        assert templating.render_tache(2**31) == Markup("")
