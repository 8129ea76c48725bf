"""How many requests a live page makes per minute: while its task runs, while idle, once finished.

    .venv/bin/python bench/page_requests.py [--seconds 60]

Serves the sample app (``flask run``) with a manager beside it on a SQLite file,
with the default ``TACHES_JS_*`` settings, opens task pages in headless Chromium
(/usr/bin/chromium and /usr/bin/chromedriver, driven by Selenium) and counts the
batch requests status.js sends over ``--seconds``:

* a task that logs a line every half second (its page changes all the time);
* a task waiting for a start an hour ahead (nothing changes: the page backs off);
* a finished task (nothing to ask).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_taches.clock import utcnow  # noqa: E402

CHATTY = "sample_app.services:DemoService.chatty"
SETTLE = 25.0  # seconds on a page before counting: past TACHES_JS_IDLE_AFTER (20 s)
COUNTER_JS = """
window.__batch = 0;
const realFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  const url = new URL(typeof input === "string" ? input : input.url, location.href);
  if (url.pathname.endsWith("/taches/status")) { window.__batch += 1; }
  return realFetch(input, init);
};
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sample_app(folder: str) -> Iterator[tuple[str, Any]]:
    """The sample app served on a free port, a manager beside it; yields (url, app)."""
    from sample_app import create_app

    url = f"sqlite:///{folder}/pages.sqlite"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TACHES_FOLDER": f"{folder}/files"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env.update(FLASK_SQLALCHEMY_DATABASE_URI=url, TACHES_FOLDER=f"{folder}/files")
    port = free_port()
    flask = [sys.executable, "-m", "flask", "--app", "sample_app"]
    commands = [
        [*flask, "taches", "start", "--forever"],
        [*flask, "run", "--port", str(port), "--no-reload"],
    ]
    processes = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for c in commands
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/taches/", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        yield base, app
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNTER_JS})
        yield driver
    finally:
        driver.quit()


def per_minute(browser: Any, page: str, seconds: float) -> float:
    """Batch requests per minute on ``page``, counted after it settled."""
    browser.get(page)
    time.sleep(SETTLE)
    before = browser.execute_script("return window.__batch;")
    time.sleep(seconds)
    after = browser.execute_script("return window.__batch;")
    return float(after - before) * 60 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    from sample_app import taches

    with (
        tempfile.TemporaryDirectory(prefix="taches-pages-") as folder,
        sample_app(folder) as (base, app),
        chromium() as browser,
    ):
        with app.app_context():
            long = args.seconds + SETTLE + 30
            running = taches.add(CHATTY, parametres={"seconds": long, "every": 0.5})
            waiting = taches.add(CHATTY, run_at=utcnow() + timedelta(hours=1))
            done = taches.add(CHATTY, parametres={"seconds": 0.1})
        cases = [
            ("a running task logging every 0.5 s", running),
            ("a task waiting for its start, unchanged", waiting),
            ("a finished task", done),
        ]
        for label, tache_id in cases:
            rate = per_minute(browser, f"{base}/taches/{tache_id}", args.seconds)
            print(f"{label:<44} {rate:6.1f} requests per minute", flush=True)


if __name__ == "__main__":
    main()
