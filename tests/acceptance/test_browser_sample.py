"""The whole product in a real browser: the sample app, a real manager, status.js.

``sample_server`` (conftest) serves the sample app with ``flask run`` and runs
``flask taches start --forever`` beside it on one SQLite file; status.js polls
every 0.5 s. Batch requests are counted by a ``window.fetch`` wrapper that the
browser installs in every page before its own scripts (conftest's RECORDER_JS),
which also keeps the ``taches:*`` events status.js dispatches.

Screenshots of the demo page, the monitor page, the dashboard and a task page go
to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flask_taches.clock import utcnow
from tests.acceptance.conftest import JS_POLL, SampleServer, wait_for

pytestmark = pytest.mark.browser

DEMO = "sample_app.services:DemoService.demo"
REPORT = "sample_app.services:ReportService.build"
WAIT = 30.0  # seconds: the most a state change may take on a busy machine
QUIET = 4 * JS_POLL  # seconds: "no more requests" means four intervals without one
UNFINISHED = {"WAITING", "TO_RUN", "RUNNING"}
SHOWN_PERCENT = 40  # the demo screenshot waits for bars this far along
CLICK_TRIES = 5  # a live element may be replaced under the pointer; try again


def css(browser: Any, selector: str) -> Any:
    return browser.find_element("css selector", selector)


def click(browser: Any, selector: str) -> None:
    """A real click; found again if status.js replaced it between finding and clicking."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(CLICK_TRIES - 1):
        try:
            css(browser, selector).click()
            return
        except StaleElementReferenceException:
            continue
    css(browser, selector).click()


def js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def fragment(browser: Any, selector: str) -> dict[str, str] | None:
    """The live fragment inside ``selector``: its task id, status and bar's percent."""
    found: dict[str, str] | None = js(
        browser,
        """
        const f = document.querySelector(arguments[0] + ' .tache-status');
        if (!f) { return null; }
        const bar = f.querySelector('.tache-progress');
        return {id: f.dataset.tacheId, status: f.dataset.status,
                percent: bar ? bar.dataset.percent : ''};
        """,
        selector,
    )
    return found


def status_of(browser: Any, selector: str) -> str | None:
    found = fragment(browser, selector)
    return found["status"] if found else None


def hidden(browser: Any, selector: str) -> bool:
    return bool(js(browser, "return document.querySelector(arguments[0]).hidden;", selector))


def recorded(browser: Any) -> dict[str, Any]:
    data: dict[str, Any] = js(browser, "return window.__taches;")
    return data


def accept_confirm(browser: Any, expected: str) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    alert = WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present())
    assert expected in alert.text
    alert.accept()


def submit(browser: Any, selector: str) -> None:
    """Click a button that posts a form, and wait for the page it leads to."""
    js(browser, "window.__oldPage = true;")
    click(browser, selector)
    wait_for(
        lambda: js(browser, "return !window.__oldPage && document.readyState === 'complete';"),
        f"the page after clicking {selector}",
        WAIT,
    )


def set_field(browser: Any, name: str, value: str) -> None:
    field = css(browser, f'form.add [name="{name}"]')
    field.clear()
    field.send_keys(value)


def added_ids(browser: Any) -> list[int]:
    """The ids the flash message of the demo page announces."""
    text = css(browser, "p.flash").text
    match = re.search(r"\(#(\d+)(?: to #(\d+))?\)", text)
    assert match, text
    first = int(match.group(1))
    last = int(match.group(2) or first)
    return list(range(first, last + 1))


def monitor(
    browser: Any, server: SampleServer, ids: list[int], signature: str, *statuses: str
) -> None:
    query = f"ids={','.join(map(str, ids))}&signature={signature}"
    query += "".join(f"&status={s}" for s in statuses)
    browser.get(f"{server.url}/monitor?{query}")
    wait_for(lambda: js(browser, "return Boolean(window.Taches);"), "status.js", WAIT)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def alice(browser: Any, sample_server: SampleServer) -> Any:
    """The browser, signed in as alice (the admin) with the header's switch."""
    browser.get(sample_server.url + "/")
    submit(browser, 'form.who button[value="alice"]')
    pressed = js(browser, "return document.querySelector('form.who [aria-pressed]').value;")
    assert pressed == "alice"
    return browser


def test_task_added_from_the_page_goes_live_without_a_reload(
    alice: Any, sample_server: SampleServer
) -> None:
    browser = alice
    browser.get(sample_server.url + "/")
    set_field(browser, "seconds", "4")
    set_field(browser, "delay", "2")  # seen TO_RUN first, whatever the machine's speed
    submit(browser, 'button[data-count="1"]')
    (tache_id,) = added_ids(browser)
    js(browser, "window.__samePage = 'yes';")
    selector = f'tr#tache-{tache_id} .tache[data-id="{tache_id}"]'

    seen: list[str] = []
    percents: list[float] = []

    def sample() -> bool:
        found = fragment(browser, selector)
        assert found is not None and found["id"] == str(tache_id)
        if not seen or seen[-1] != found["status"]:
            seen.append(found["status"])
        if found["status"] == "RUNNING" and found["percent"]:
            percents.append(float(found["percent"]))
        return found["status"] not in UNFINISHED

    wait_for(sample, f"task {tache_id} to finish", WAIT)
    assert seen == ["TO_RUN", "RUNNING", "COMPLETED"]
    # The bar grew while it ran, and is full at the end.
    assert len(set(percents)) >= 2, percents
    assert percents == sorted(percents)
    assert fragment(browser, selector) == {
        "id": str(tache_id),
        "status": "COMPLETED",
        "percent": "100.0",
    }
    assert js(browser, "return window.__samePage;") == "yes"  # never reloaded
    events = [e for e in recorded(browser)["events"] if e["id"] == tache_id]
    assert [e["status"] for e in events if e["type"] == "done"] == ["COMPLETED"]


def test_signature_element_picks_up_a_task_added_after_the_page_loaded(
    alice: Any, sample_server: SampleServer
) -> None:
    browser = alice
    signature = unique("report")
    monitor(browser, sample_server, [], signature)
    assert status_of(browser, "#by-signature") is None
    assert hidden(browser, "#by-signature-filtered")  # no task yet: hidden
    tache_id = sample_server.add(
        REPORT, signature=signature, parametres={"seconds": 1}, owner="alice"
    )
    wait_for(
        lambda: (fragment(browser, "#by-signature") or {}).get("id") == str(tache_id),
        "the new task in the signature element",
        WAIT,
    )
    wait_for(lambda: status_of(browser, "#by-signature") == "COMPLETED", "completed", WAIT)
    # The monitor page's own button adds one more with fetch and Taches.refresh().
    click(browser, "#start-signed button")
    wait_for(
        lambda: (fragment(browser, "#by-signature") or {}).get("id") == str(tache_id + 1),
        "the task added by the button",
        WAIT,
    )


def test_status_filter_hides_a_finished_task(alice: Any, sample_server: SampleServer) -> None:
    browser = alice
    tache_id = sample_server.add(
        DEMO,
        parametres={"seconds": 1.5},
        run_at=utcnow() + timedelta(seconds=1),
        owner="alice",
    )
    monitor(browser, sample_server, [tache_id], unique("none"), "TO_RUN", "RUNNING")
    filtered = f'td.filtered .tache[data-id="{tache_id}"]'
    assert css(browser, filtered).is_displayed()
    assert status_of(browser, filtered) in ("TO_RUN", "RUNNING")
    wait_for(lambda: status_of(browser, "td.always") == "COMPLETED", "completed", WAIT)
    wait_for(lambda: hidden(browser, filtered), "the filtered element hidden", WAIT)
    assert not css(browser, filtered).is_displayed()
    assert css(browser, "td.always .tache").is_displayed()


def test_polling_stops_when_every_task_is_finished(alice: Any, sample_server: SampleServer) -> None:
    browser = alice
    # The signature's latest task is finished before the page loads.
    signature = unique("done")
    finished = sample_server.add(DEMO, signature=signature, parametres={"seconds": 0})
    sample_server.cancel(finished)
    wait_for(lambda: sample_server.status(finished) not in UNFINISHED, "a finished signature", WAIT)
    first = sample_server.add(DEMO, parametres={"seconds": 1}, owner="alice")
    second = sample_server.add(DEMO, parametres={"seconds": 2}, owner="alice")
    monitor(browser, sample_server, [first, second], signature)
    for tache_id in (first, second):
        wait_for(
            lambda tache_id=tache_id: (
                status_of(browser, f'td.always .tache[data-id="{tache_id}"]') == "COMPLETED"
            ),
            f"task {tache_id} completed",
            WAIT,
        )
    wait_for(lambda: js(browser, "return !window.Taches.polling;"), "polling to stop", WAIT)
    stopped = recorded(browser)["batch"]
    assert stopped >= 2  # it did poll while the tasks ran
    time.sleep(QUIET)
    assert recorded(browser)["batch"] == stopped


def test_cancel_button_cancels_a_running_task(alice: Any, sample_server: SampleServer) -> None:
    browser = alice
    tache_id = sample_server.add(DEMO, parametres={"seconds": 60}, owner="alice")
    monitor(browser, sample_server, [tache_id], unique("none"))
    cell = "td.always"
    wait_for(lambda: status_of(browser, cell) == "RUNNING", "running", WAIT)
    click(browser, f'{cell} form[data-action="cancel"] button')
    accept_confirm(browser, str(tache_id))
    wait_for(lambda: status_of(browser, cell) == "CANCELLED", "cancelled on the page", WAIT)
    assert sample_server.status(tache_id) == "CANCELLED"

    # Restart from the page: the task is unfinished again and the page follows it.
    click(browser, f'{cell} form[data-action="restart"] button')
    accept_confirm(browser, str(tache_id))
    wait_for(lambda: status_of(browser, cell) == "RUNNING", "running again", WAIT)
    sample_server.cancel(tache_id)
    wait_for(lambda: status_of(browser, cell) == "CANCELLED", "cancelled again", WAIT)


def test_screenshots(alice: Any, sample_server: SampleServer, artifacts: Path) -> None:
    """The demo page with running tasks, the monitor, the dashboard, a task page."""
    browser = alice
    browser.get(sample_server.url + "/")
    set_field(browser, "seconds", "12")
    submit(browser, 'button[data-count="10"]')
    ids = added_ids(browser)
    assert len(ids) == 10

    def running_with_progress() -> bool:
        found = [fragment(browser, f'.tache[data-id="{i}"]') for i in ids]
        running = [f for f in found if f and f["status"] == "RUNNING" and f["percent"]]
        return sum(1 for f in running if float(f["percent"]) >= SHOWN_PERCENT) >= 3

    wait_for(running_with_progress, "three tasks running well under way", WAIT)
    browser.save_screenshot(str(artifacts / "demo.png"))

    monitor(browser, sample_server, ids[:4], "demo-report", "RUNNING")
    wait_for(lambda: status_of(browser, "td.always") == "RUNNING", "running", WAIT)
    browser.save_screenshot(str(artifacts / "monitor.png"))

    browser.get(sample_server.url + "/taches/")
    wait_for(lambda: css(browser, f'.tache[data-id="{ids[0]}"]'), "the dashboard's rows", WAIT)
    browser.save_screenshot(str(artifacts / "dashboard.png"))

    browser.get(f"{sample_server.url}/taches/{ids[0]}")
    wait_for(lambda: status_of(browser, f'.tache[data-id="{ids[0]}"]'), "the task page", WAIT)
    browser.save_screenshot(str(artifacts / "tache.png"))

    width, height = browser.get_window_size().values()
    try:
        browser.set_window_size(390, 844)  # a phone
        browser.get(sample_server.url + "/taches/")
        browser.save_screenshot(str(artifacts / "dashboard-narrow.png"))
    finally:
        browser.set_window_size(width, height)
    for name in ("demo", "monitor", "dashboard", "tache", "dashboard-narrow"):
        assert (artifacts / f"{name}.png").stat().st_size > 0


def test_dashboard_cancels_all_after_confirming(alice: Any, sample_server: SampleServer) -> None:
    browser = alice
    ids = [sample_server.add(DEMO, parametres={"seconds": 60}, owner="alice") for _ in range(3)]
    browser.get(sample_server.url + "/taches/")
    wait_for(lambda: js(browser, "return Boolean(window.Taches);"), "status.js", WAIT)
    js(browser, "window.__oldPage = true;")
    click(browser, "form.taches-cancel-all button")
    accept_confirm(browser, "waiting and running tasks this filter selects?")
    wait_for(lambda: js(browser, "return !window.__oldPage;"), "the dashboard again", WAIT)
    for tache_id in ids:
        wait_for(
            lambda tache_id=tache_id: sample_server.status(tache_id) == "CANCELLED",
            f"task {tache_id} cancelled",
            WAIT,
        )
