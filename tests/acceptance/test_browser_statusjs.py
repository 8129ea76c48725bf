"""status.js alone, in a real Chromium, against a small scripted server.

The server stands in for the blueprint's batch and action routes so each test
can set the tasks' statuses, make requests fail, or count and inspect them
exactly (the whole product, with a real manager, is in test_browser_sample.py).
What status.js asks ``setTimeout`` for is recorded in the page, so the
back-off is checked on the delays it chose, not on a clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request
from markupsafe import Markup
from werkzeug.serving import make_server

from tests.acceptance.conftest import wait_for as conftest_wait_for

pytestmark = pytest.mark.browser

STATUS_JS = Path(__file__).resolve().parents[2] / "flask_taches" / "static" / "status.js"
FINISHED = {"COMPLETED", "FAILED", "INTERRUPTED", "CANCELLED"}
POLL_MS = 300  # milliseconds: status.js interval on these pages
WAIT = 10.0  # seconds: the most any condition below may take
QUIET = 4 * POLL_MS / 1000  # seconds: "nothing more happens" means four intervals
# Fixed CSRF tokens: the page's <meta> one and the one in the fragments' forms.
PAGE_TOKEN = "meta-token"
FORM_TOKEN = "form-token"

#: Records, before status.js runs, the delays it gives setTimeout (back-off).
DELAY_RECORDER = """
<script>
  window.__delays = [];
  const realSetTimeout = window.setTimeout.bind(window);
  window.setTimeout = (fn, delay, ...rest) => {
    window.__delays.push(delay);
    return realSetTimeout(fn, delay, ...rest);
  };
</script>
"""


@dataclass
class StandIn:
    """The scripted server's state, shared with its request threads."""

    base: str = ""
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    pages: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, tache_id: int, status: str, signature: str | None = None) -> None:
        with self.lock:
            known = self.tasks.get(tache_id, {})
            self.tasks[tache_id] = {
                "id": tache_id,
                "status": status,
                "signature": signature if signature is not None else known.get("signature"),
            }

    def batch_count(self) -> int:
        with self.lock:
            return len(self.requests)


def fragment(task: dict[str, Any], actions: tuple[str, ...] = ()) -> Markup:
    """A status fragment shaped like the blueprint's ``_status.html``."""
    finished = task["status"] in FINISHED
    forms = Markup("").join(
        Markup(
            '<form method="post" action="/act/{id}/{a}" class="tache-action" data-action="{a}" '
            'data-confirm="{a} task {id}?"><input type="hidden" name="csrf_token" value="{t}">'
            '<button type="submit" class="act-{a}">{a}</button></form>'
        ).format(id=task["id"], a=action, t=FORM_TOKEN)
        for action in actions
    )
    return Markup(
        '<div class="tache-status" data-tache-id="{id}" data-status="{s}" data-finished="{f}">'
        '<span class="badge">{s}</span>{forms}</div>'
    ).format(id=task["id"], s=task["status"], f=1 if finished else 0, forms=forms)


def make_app(state: StandIn) -> Flask:
    app = Flask("standin")

    @app.get("/static/status.js")
    def script() -> Response:
        return Response(STATUS_JS.read_text(), mimetype="text/javascript")

    @app.get("/page/<name>")
    def page(name: str) -> Response:
        return Response(state.pages[name], mimetype="text/html")

    @app.post("/taches/status")
    def batch() -> Any:
        body = request.get_json()
        with state.lock:
            state.requests.append(
                {"body": body, "accept": request.headers.get("Accept"), "at": time.monotonic()}
            )
            if state.fail_next > 0:
                state.fail_next -= 1
                return jsonify(error="scripted failure"), 503
            tasks = {i: dict(t) for i, t in state.tasks.items()}
        found: dict[int, dict[str, Any]] = {}
        missing_ids = []
        for tache_id in body["ids"]:
            if tache_id in tasks:
                found[tache_id] = tasks[tache_id]
            else:
                missing_ids.append(tache_id)
        missing_signatures = []
        for signature in body["signatures"]:
            matching = [t for t in tasks.values() if t["signature"] == signature]
            if matching:
                latest = max(matching, key=lambda t: t["id"])
                found[latest["id"]] = latest
            else:
                missing_signatures.append(signature)
        taches = [
            {
                **task,
                "finished": task["status"] in FINISHED,
                "status_html": str(fragment(task, actions=("cancel", "restart"))),
                "result_html": "",
            }
            for task in found.values()
        ]
        return jsonify(
            taches=taches, missing={"ids": missing_ids, "signatures": missing_signatures}
        )

    @app.post("/act/<int:tache_id>/<action>")
    def act(tache_id: int, action: str) -> Any:
        with state.lock:
            state.actions.append(
                {
                    "id": tache_id,
                    "action": action,
                    "form_token": request.form.get("csrf_token"),
                    "header_token": request.headers.get("X-CSRFToken"),
                    "requested_with": request.headers.get("X-Requested-With"),
                    "accept": request.headers.get("Accept"),
                }
            )
        state.set(tache_id, "CANCELLED" if action == "cancel" else "TO_RUN")
        return jsonify(tache=state.tasks[tache_id])

    return app


@pytest.fixture(scope="module")
def standin_server() -> Iterator[StandIn]:
    state = StandIn()
    server = make_server("127.0.0.1", 0, make_app(state), threaded=True)
    state.base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="standin", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def standin(standin_server: StandIn) -> StandIn:
    """A fresh state for each test (the server itself lives for the module)."""
    state = standin_server
    with state.lock:
        state.tasks.clear()
        state.requests.clear()
        state.actions.clear()
        state.fail_next = 0
    return state


def open_page(browser: Any, state: StandIn, body: str, *, batch_max: int | None = None) -> None:
    """Serve ``body`` in a page that loads status.js, and open it."""
    extra = f' data-batch-max="{batch_max}"' if batch_max else ""
    name = f"p{len(state.pages) + 1}"  # a new URL each time: never a cached page
    state.pages[name] = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f'<meta name="taches-csrf" content="{PAGE_TOKEN}">'
        f"{DELAY_RECORDER}"
        f'<script src="/static/status.js" data-batch-url="/taches/status" '
        f'data-poll-ms="{POLL_MS}"{extra} defer></script>'
        f"</head><body>{body}</body></html>"
    )
    browser.get(f"{state.base}/page/{name}")


def wait_for(condition: Callable[[], Any], message: str, timeout: float = WAIT) -> Any:
    return conftest_wait_for(condition, message, timeout)


def js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def shown_status(browser: Any, selector: str) -> str | None:
    return js(
        browser,
        "const f = document.querySelector(arguments[0] + ' .tache-status');"
        "return f ? f.dataset.status : null;",
        selector,
    )


def events(browser: Any, kind: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = js(browser, "return window.__taches.events;")
    return [e for e in found if kind is None or e["type"] == kind]


def test_one_request_per_tick_for_the_whole_page(browser: Any, standin: StandIn) -> None:
    standin.set(1, "RUNNING")
    standin.set(2, "TO_RUN", signature="export")
    open_page(
        browser,
        standin,
        '<span class="tache" id="a" data-id="1"></span>'
        '<span class="tache" id="b" data-id="1"></span>'
        '<span class="tache" id="c" data-signature="export"></span>'
        '<span class="tache" id="d" data-id="2"></span>',
    )
    wait_for(lambda: standin.batch_count() >= 3, "three ticks")
    with standin.lock:
        bodies = [r["body"] for r in standin.requests[:3]]
        accepts = {r["accept"] for r in standin.requests}
    # One request a tick, each id once, the signature beside them.
    assert bodies == [{"ids": [1, 2], "signatures": ["export"]}] * 3
    assert accepts == {"application/json"}
    for selector in ("#a", "#b"):
        assert shown_status(browser, selector) == "RUNNING"
    assert shown_status(browser, "#c") == "TO_RUN"
    assert shown_status(browser, "#d") == "TO_RUN"


def test_stops_polling_once_everything_is_finished(browser: Any, standin: StandIn) -> None:
    standin.set(1, "RUNNING")
    standin.set(2, "RUNNING", signature="nightly")
    open_page(
        browser,
        standin,
        '<span class="tache" id="a" data-id="1"></span>'
        '<span class="tache" id="s" data-signature="nightly"></span>',
    )
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "first render")
    standin.set(1, "COMPLETED")
    wait_for(lambda: shown_status(browser, "#a") == "COMPLETED", "task 1 completed")
    # The signature's task still runs: polling goes on.
    still = standin.batch_count()
    wait_for(lambda: standin.batch_count() > still, "a poll for the running signature")
    with standin.lock:
        assert standin.requests[-1]["body"] == {"ids": [], "signatures": ["nightly"]}
    standin.set(2, "FAILED")
    wait_for(lambda: shown_status(browser, "#s") == "FAILED", "signature task failed")
    wait_for(lambda: js(browser, "return !window.Taches.polling;"), "polling to stop")
    stopped = standin.batch_count()
    time.sleep(QUIET)
    assert standin.batch_count() == stopped
    done = {(e["id"], e["status"]) for e in events(browser, "done")}
    assert done == {(1, "COMPLETED"), (2, "FAILED")}


def test_backs_off_on_errors_then_recovers(browser: Any, standin: StandIn) -> None:
    standin.set(7, "RUNNING")
    standin.fail_next = 3
    open_page(browser, standin, '<span class="tache" id="a" data-id="7"></span>')
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "the first answer after errors")
    wait_for(lambda: standin.batch_count() >= 5, "a poll after recovering")
    delays = js(browser, "return window.__delays;")
    # start (0), then three failures: 2, 4 and 8 intervals (+/- 10 % jitter), then
    # back to the plain interval once the server answers.
    assert delays[0] == 0
    backoff = [d / POLL_MS for d in delays[1:4]]
    for got, expected in zip(backoff, (2, 4, 8), strict=True):
        assert expected * 0.9 <= got <= expected * 1.1, delays
    assert delays[4] == POLL_MS


def test_pauses_while_the_tab_is_hidden(browser: Any, standin: StandIn) -> None:
    standin.set(3, "RUNNING")
    open_page(browser, standin, '<span class="tache" id="a" data-id="3"></span>')
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "first render")
    js(
        browser,
        "window.__hidden = true;"
        "Object.defineProperty(document, 'hidden',"
        "  {configurable: true, get: () => window.__hidden});"
        "document.dispatchEvent(new Event('visibilitychange'));",
    )
    # At most the tick already under way ends; then nothing while hidden.
    time.sleep(POLL_MS / 1000 * 2)
    paused = standin.batch_count()
    time.sleep(QUIET)
    assert standin.batch_count() == paused
    standin.set(3, "COMPLETED")
    js(browser, "window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'));")
    wait_for(lambda: shown_status(browser, "#a") == "COMPLETED", "resumed on visibilitychange")


def test_watches_elements_added_later(browser: Any, standin: StandIn) -> None:
    standin.set(4, "RUNNING")
    standin.set(5, "TO_RUN", signature="late")
    open_page(browser, standin, '<div id="box"></div>')
    time.sleep(QUIET)
    assert standin.batch_count() == 0  # nothing to watch: no request at all
    js(
        browser,
        "document.getElementById('box').innerHTML = arguments[0];",
        '<span class="tache" id="a" data-id="4"></span>',
    )
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "MutationObserver picked it up")
    # Taches.watch() for an element built by hand (the observer would see it too).
    js(
        browser,
        "const el = document.createElement('span'); el.className = 'tache'; el.id = 's';"
        "el.dataset.signature = 'late'; document.body.append(el); window.Taches.watch(el);",
    )
    wait_for(lambda: shown_status(browser, "#s") == "TO_RUN", "watch() picked it up")


def test_chunks_above_the_batch_limit(browser: Any, standin: StandIn) -> None:
    for tache_id in range(1, 8):
        standin.set(tache_id, "RUNNING")
    spans = "".join(f'<span class="tache" data-id="{i}"></span>' for i in range(1, 8))
    open_page(browser, standin, spans, batch_max=3)
    wait_for(lambda: standin.batch_count() >= 3, "the first tick's requests")
    with standin.lock:
        sizes = [len(r["body"]["ids"]) + len(r["body"]["signatures"]) for r in standin.requests[:3]]
        asked = [i for r in standin.requests[:3] for i in r["body"]["ids"]]
    assert sizes == [3, 3, 1]
    assert sorted(asked) == list(range(1, 8))
    wait_for(
        lambda: (
            js(browser, "return document.querySelectorAll('.tache .tache-status').length;") == 7
        ),
        "every element filled",
    )


def test_status_filter_shows_an_element_only_in_those_statuses(
    browser: Any, standin: StandIn
) -> None:
    standin.set(6, "RUNNING")
    open_page(
        browser,
        standin,
        """<span class="tache" id="live" data-id="6" data-status='["TO_RUN","RUNNING"]'></span>
        <span class="tache" id="ok" data-id="6" data-status='["COMPLETED"]'></span>
        <span class="tache" id="sig" data-signature="none-yet" data-status='["RUNNING"]'></span>""",
    )
    wait_for(lambda: shown_status(browser, "#live") == "RUNNING", "first render")
    hidden = "return document.querySelector(arguments[0]).hidden;"
    assert js(browser, hidden, "#live") is False
    assert js(browser, hidden, "#ok") is True
    assert js(browser, hidden, "#sig") is True  # no task with that signature yet
    standin.set(6, "COMPLETED")
    wait_for(lambda: js(browser, hidden, "#live"), "the running-only element hidden")
    assert js(browser, hidden, "#ok") is False


def test_action_forms_confirm_then_post_with_the_csrf_token(browser: Any, standin: StandIn) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    standin.set(8, "RUNNING")
    open_page(browser, standin, '<span class="tache" id="a" data-id="8"></span>')
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "first render")

    browser.find_element("css selector", "#a .act-cancel").click()
    alert = WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present())
    assert alert.text == "cancel task 8?"
    alert.dismiss()
    time.sleep(QUIET)
    assert standin.actions == []  # declined: nothing sent

    browser.find_element("css selector", "#a .act-cancel").click()
    WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present()).accept()
    wait_for(lambda: shown_status(browser, "#a") == "CANCELLED", "refreshed after the action")
    assert standin.actions == [
        {
            "id": 8,
            "action": "cancel",
            "form_token": FORM_TOKEN,
            "header_token": FORM_TOKEN,
            "requested_with": "fetch",
            "accept": "application/json",
        }
    ]
    wait_for(lambda: js(browser, "return !window.Taches.polling;"), "finished: polling stops")

    # Restart: the task is unfinished again, so polling resumes.
    browser.find_element("css selector", "#a .act-restart").click()
    WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present()).accept()
    wait_for(lambda: shown_status(browser, "#a") == "TO_RUN", "restarted")
    before = standin.batch_count()
    wait_for(lambda: standin.batch_count() > before, "polling resumed after restart")


def test_unknown_ids_are_dropped_and_bad_ids_never_sent(browser: Any, standin: StandIn) -> None:
    standin.set(9, "RUNNING")
    open_page(
        browser,
        standin,
        '<span class="tache" id="gone" data-id="404">old content</span>'
        '<span class="tache" id="bad" data-id="abc"></span>'
        '<span class="tache" id="a" data-id="9"></span>',
    )
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "first render")
    wait_for(lambda: events(browser, "gone"), "taches:gone")
    assert js(browser, "return document.getElementById('gone').innerHTML;") == ""
    assert [e["id"] for e in events(browser, "gone")] == [404]
    standin.set(9, "COMPLETED")
    wait_for(lambda: shown_status(browser, "#a") == "COMPLETED", "completed")
    with standin.lock:
        bodies = [r["body"] for r in standin.requests]
    assert bodies[0] == {"ids": [404, 9], "signatures": []}
    assert all(b["ids"] == [9] for b in bodies[1:])  # 404 asked once; "abc" never
    assert json.dumps(bodies).count('"abc"') == 0


def test_an_element_being_pressed_is_replaced_after_the_click(
    browser: Any, standin: StandIn
) -> None:
    standin.set(10, "RUNNING")
    open_page(browser, standin, '<span class="tache" id="a" data-id="10"></span>')
    wait_for(lambda: shown_status(browser, "#a") == "RUNNING", "first render")
    js(
        browser,
        "window.__button = document.querySelector('#a .act-cancel');"
        "window.__button.dispatchEvent(new PointerEvent('pointerdown', {bubbles: true}));",
    )
    standin.set(10, "TO_RUN")  # still unfinished: polling goes on
    asked = standin.batch_count()
    wait_for(lambda: standin.batch_count() >= asked + 2, "two ticks while pressed")
    # The button under the pointer is still the one in the page...
    assert js(browser, "return window.__button.isConnected;") is True
    assert shown_status(browser, "#a") == "RUNNING"
    # ...and the new content comes right after the pointer is released.
    js(
        browser,
        "window.__button.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));",
    )
    wait_for(lambda: shown_status(browser, "#a") == "TO_RUN", "replaced after the click")
