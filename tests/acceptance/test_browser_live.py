"""Live pages in a real browser: the task page, the pace of status.js, the dashboard.

The sample app is served for real with a manager beside it (conftest's
``sample_server``); status.js polls every 0.5 s while something changes and
backs off to 2 s after 3 s without change (conftest's settings). The browser
records the time and body of every batch request (conftest's RECORDER_JS).
Screenshots of a live task page and of the dashboard's panels go to
``test-artifacts/``.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flask_taches.clock import utcnow
from tests.acceptance.conftest import JS_IDLE_AFTER, JS_POLL, JS_POLL_IDLE, SampleServer, wait_for
from tests.acceptance.test_browser_sample import (
    REPORT,
    WAIT,
    accept_confirm,
    click,
    css,
    fragment,
    js,
    monitor,
    recorded,
    status_of,
    submit,
    unique,
)

pytestmark = pytest.mark.browser

CHATTY = "sample_app.services:DemoService.chatty"
FAIL = "sample_app.services:DemoService.fail"
DEMO = "sample_app.services:DemoService.demo"


def count(browser: Any, selector: str) -> int:
    return int(js(browser, "return document.querySelectorAll(arguments[0]).length;", selector))


def text(browser: Any, selector: str) -> str:
    found: str = js(
        browser,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        selector,
    )
    return found


def later(seconds: float = 3600) -> Any:
    """A start time far enough ahead that the task stays TO_RUN for the whole test."""
    return utcnow() + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def alice(browser: Any, sample_server: SampleServer) -> Any:
    """The browser, signed in as alice (the admin)."""
    browser.get(sample_server.url + "/")
    submit(browser, 'form.who button[value="alice"]')
    return browser


def test_task_page_shows_new_log_lines_without_a_reload(
    alice: Any, sample_server: SampleServer, artifacts: Path
) -> None:
    browser = alice
    lines = 8
    tache_id = sample_server.add(
        CHATTY, parametres={"seconds": lines * 0.5, "every": 0.5}, owner="alice"
    )
    browser.get(f"{sample_server.url}/taches/{tache_id}")
    js(browser, "window.__samePage = 'yes';")
    page = f'[data-tache-page="{tache_id}"]'
    seen: list[int] = []

    def sample() -> bool:
        shown = count(browser, f"{page} .tache-log")
        if not seen or seen[-1] != shown:
            seen.append(shown)
        if shown == 4:
            browser.save_screenshot(str(artifacts / "tache-live.png"))
        return status_of(browser, f'.tache[data-id="{tache_id}"]') == "COMPLETED"

    wait_for(sample, f"task {tache_id} to complete", WAIT)
    wait_for(lambda: count(browser, f"{page} .tache-log") == lines, "every line on the page", WAIT)
    # The list grew step by step while the task ran, never went back.
    assert len(seen) >= 3, seen
    assert seen == sorted(seen)
    assert [
        t.strip()
        for t in js(
            browser,
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);",
            f"{page} .tache-log__message",
        )
    ] == [f"line {n} of {lines}" for n in range(1, lines + 1)]
    # The fields followed: an end date, a duration, no heartbeat of a finished task.
    assert "UTC" in text(browser, f"{page} .taches-fields__ended")
    assert text(browser, f"{page} .taches-fields__duration")
    assert count(browser, f"{page} .taches-fields__heartbeat") == 0
    assert "done" in text(browser, f'.tache[data-id="{tache_id}"] .tache-progress__label')
    assert js(browser, "return window.__samePage;") == "yes"  # never reloaded
    assert (artifacts / "tache-live.png").stat().st_size > 0

    # Deleted from its own page: the page says so, links back, and stops asking.
    click(browser, f'.tache[data-id="{tache_id}"] form[data-action="delete"] button')
    accept_confirm(browser, f"Delete task {tache_id}?")
    wait_for(lambda: css(browser, ".taches-gone").is_displayed(), "the gone notice", WAIT)
    assert css(browser, ".taches-gone a").get_attribute("href").endswith("/taches/")
    wait_for(lambda: js(browser, "return !window.Taches.polling;"), "polling to stop", WAIT)


def test_a_three_second_task_shows_running_before_completed(
    alice: Any, sample_server: SampleServer
) -> None:
    signature = unique("three")
    monitor(alice, sample_server, [], signature)
    time.sleep(JS_POLL)  # the page is loaded and polling for a task that does not exist yet
    tache_id = sample_server.add(REPORT, signature=signature, parametres={"seconds": 3})
    seen: list[str] = []

    def sample() -> bool:
        found = fragment(alice, "#by-signature") or {}
        if found.get("id") == str(tache_id) and (not seen or seen[-1] != found["status"]):
            seen.append(found["status"])
        return bool(seen) and seen[-1] == "COMPLETED"

    wait_for(sample, f"task {tache_id} completed on the signature element", WAIT)
    assert "RUNNING" in seen, seen
    assert seen.index("RUNNING") < seen.index("COMPLETED")


def test_polling_backs_off_when_nothing_changes_and_stops_when_all_is_finished(
    alice: Any, sample_server: SampleServer
) -> None:
    browser = alice
    # The page's signature element has its task, finished: only the queued one is pending.
    signature = unique("finished")
    sample_server.cancel(sample_server.add(DEMO, run_at=later(), signature=signature))
    tache_id = sample_server.add(DEMO, run_at=later(), owner="alice")
    monitor(browser, sample_server, [tache_id], signature)
    start = js(browser, "return performance.now();")
    backed_off = 3  # intervals at the slowest pace to look at
    settle = JS_IDLE_AFTER + 2 * JS_POLL_IDLE + backed_off * JS_POLL_IDLE + 1
    time.sleep(settle)
    times = [t for t in recorded(browser)["times"] if t >= start]
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    # It did ask while nothing had changed yet; then slowed down to the idle pace.
    early = [t for t in times if t - start < JS_IDLE_AFTER * 1000]
    assert len(early) >= 2, gaps
    assert len(gaps) >= backed_off, gaps
    assert all(gap >= 0.9 * JS_POLL_IDLE for gap in gaps[-backed_off:]), gaps
    per_minute = 60 / (sum(gaps[-backed_off:]) / backed_off)
    print(f"idle page: {per_minute:.0f} batch requests per minute")

    # A change is still seen, and once everything shown is finished it stops asking.
    sample_server.cancel(tache_id)
    wait_for(lambda: status_of(browser, "td.always") == "CANCELLED", "cancelled", WAIT)
    wait_for(lambda: js(browser, "return !window.Taches.polling;"), "polling to stop", WAIT)
    stopped = recorded(browser)["batch"]
    time.sleep(2 * JS_POLL_IDLE)
    assert recorded(browser)["batch"] == stopped


def test_dashboard_counts_chart_reasons_and_a_live_new_row(
    alice: Any, sample_server: SampleServer, artifacts: Path
) -> None:
    browser = alice
    queue = unique("q")
    done = sample_server.add(REPORT, parametres={"seconds": 0}, queue=queue, owner="alice")
    failed = sample_server.add(FAIL, parametres={"seconds": 0}, queue=queue, owner="alice")
    waiting = sample_server.add(DEMO, run_at=later(), queue=queue, owner="alice")
    for tache_id, status in ((done, "COMPLETED"), (failed, "FAILED")):
        wait_for(
            lambda tache_id=tache_id, status=status: sample_server.status(tache_id) == status,
            f"task {tache_id} {status}",
            WAIT,
        )
    browser.get(f"{sample_server.url}/taches/?queue={queue}")
    facet = '.taches-counts [data-status="{}"]'
    assert css(browser, facet.format("COMPLETED")).get_attribute("data-count") == "1"
    assert css(browser, facet.format("FAILED")).get_attribute("data-count") == "1"
    assert css(browser, facet.format("TO_RUN")).get_attribute("data-count") == "1"
    assert css(browser, f'.taches-counts [data-queue="{queue}"]').get_attribute("data-count") == "1"
    chart = css(browser, ".taches-chart")
    assert chart.get_attribute("data-completed") == "1"
    assert chart.get_attribute("data-failed") == "1"
    assert count(browser, ".taches-chart rect.taches-chart__completed") == 1
    assert count(browser, ".taches-chart rect.taches-chart__failed") == 1
    reason = text(browser, f'tr[data-id="{failed}"] .tache-row__reason')
    assert "the demo failure: this task always fails" in reason
    assert text(browser, f'tr[data-id="{waiting}"] .tache-row__run-at').startswith("in ")
    assert count(browser, "tbody tr.tache-row") == 3

    # A task of this queue appears on top without a reload; one of another queue does not.
    js(browser, "window.__samePage = 'yes';")
    sample_server.add(DEMO, run_at=later(), queue=unique("other"), owner="alice")
    fresh = sample_server.add(DEMO, run_at=later(), queue=queue, owner="alice")
    wait_for(
        lambda: (
            js(browser, "return document.querySelector('tbody tr.tache-row').dataset.id;")
            == str(fresh)
        ),
        "the new row on top",
        WAIT,
    )
    assert count(browser, "tbody tr.tache-row") == 4
    assert js(browser, "return window.__samePage;") == "yes"
    bodies = [json.loads(b) for b in recorded(browser)["bodies"] if b]
    assert any(b.get("newer", {}).get("query") == f"queue={queue}" for b in bodies)
    browser.save_screenshot(str(artifacts / "dashboard-panels.png"))
    for tache_id in (waiting, fresh):
        sample_server.cancel(tache_id)


def test_a_bulk_cancel_on_a_filtered_dashboard_touches_only_the_filtered_tasks(
    alice: Any, sample_server: SampleServer
) -> None:
    browser = alice
    mail, reports = unique("mail"), unique("reports")
    hidden = sample_server.add(DEMO, run_at=later(), queue=mail, owner="alice")
    shown = [sample_server.add(DEMO, run_at=later(), queue=reports, owner="alice") for _ in "ab"]
    browser.get(f"{sample_server.url}/taches/?queue={reports}")
    js(browser, "window.__oldPage = true;")
    click(browser, 'form[data-bulk="cancel"] button')
    accept_confirm(browser, "Cancel the 2 waiting and running tasks this filter selects?")
    wait_for(lambda: js(browser, "return !window.__oldPage;"), "the dashboard again", WAIT)
    assert "2 cancelled" in text(browser, ".taches-reports")
    assert browser.current_url.endswith(f"?queue={reports}")
    for tache_id in shown:
        assert sample_server.status(tache_id) == "CANCELLED"
    assert sample_server.status(hidden) == "TO_RUN"
    sample_server.cancel(hidden)


def test_a_failed_task_shows_its_reason(alice: Any, sample_server: SampleServer) -> None:
    browser = alice
    tache_id = sample_server.add(FAIL, parametres={"seconds": 0.5}, owner="alice")
    browser.get(f"{sample_server.url}/taches/{tache_id}")
    element = f'.tache[data-id="{tache_id}"]'
    wait_for(lambda: status_of(browser, element) == "FAILED", "failed", WAIT)
    reason = text(browser, f"{element} .tache-status__reason")
    assert "the demo failure: this task always fails" in reason
    assert "stopped" in text(browser, f"{element} .tache-progress__label")  # not "Trying"
