"""Fixtures for the acceptance tests: the sample app served for real, and a browser.

``sample_server`` runs ``flask --app sample_app run`` and ``flask --app sample_app
taches start --forever`` as subprocesses on a SQLite file in a temporary folder,
the way ``make demo`` does, with short intervals so tasks move quickly.
``browser`` is Debian's headless Chromium driven by Selenium; Selenium Manager is
never asked for anything (both binaries are given). Without a browser the
browser tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from flask import Flask

from tests import polling

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WINDOW = (1280, 900)  # pixels: the screenshots' size
SERVER_START = 30.0  # seconds for the web server to answer
STOP_GRACE = 10.0  # seconds a subprocess gets to exit after SIGTERM
JS_POLL = 0.5  # seconds: status.js interval in these tests
JS_IDLE_AFTER = 3.0  # seconds without change before status.js backs off, in these tests
JS_POLL_IDLE = 2.0  # seconds: the slowest interval it backs off to, in these tests

#: Settings of both subprocesses: a fast manager and a fast page.
SAMPLE_SETTINGS = {
    "TACHES_JS_POLL": str(JS_POLL),
    "TACHES_JS_IDLE_AFTER": str(JS_IDLE_AFTER),
    "TACHES_JS_POLL_IDLE": str(JS_POLL_IDLE),
    "TACHES_POLL": "0.1",
    "TACHES_HEARTBEAT": "0.5",
    "TACHES_FLUSH_INTERVAL": "0.2",
    "TACHES_KILL_GRACE": "1",
    "TACHES_DRAIN_GRACE": "1",
    "TACHES_MAX": "5",
}

#: Installed before any script of every page (CDP), so it sees status.js from its
#: first request: counts the batch requests status.js sends and keeps its events.
RECORDER_JS = """
window.__taches = {batch: 0, times: [], bodies: [], events: []};
(() => {
  const realFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = new URL(typeof input === "string" ? input : input.url, location.href);
    if (url.pathname.endsWith("/taches/status")) {
      window.__taches.batch += 1;
      window.__taches.times.push(performance.now());
      window.__taches.bodies.push(init && typeof init.body === "string" ? init.body : "");
    }
    return realFetch(input, init);
  };
  for (const name of ["taches:update", "taches:done", "taches:gone"]) {
    document.addEventListener(name, (event) => {
      const d = event.detail || {};
      const p = d.progress || {};
      window.__taches.events.push({
        type: name.slice(7), id: d.id, status: d.status,
        percent: p.percent === undefined ? null : p.percent,
      });
    });
  }
})();
"""


def wait_for(condition: Callable[[], Any], message: str, timeout: float) -> Any:
    """Poll ``condition`` until it is truthy (returned), or fail saying what was awaited."""
    return polling.wait_for(condition, message, timeout, interval=0.05)


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


def need_browser() -> None:
    """Skip without a browser; in CI (``CI`` set) that is a failure instead."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium, one per test module (starting one takes a second or two)."""
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.binary_location = str(CHROMIUM)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER_JS})
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored): the screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without TACHES_*/FLASK_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TACHES_", "FLASK_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Process:
    """A subprocess whose output goes to a log file, stopped in teardown."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                # Its own process group: the task processes it forked go too.
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def start_process(name: str, args: list[str], env: dict[str, str], folder: Path) -> Process:
    log_path = folder / f"{name}.log"
    log = log_path.open("wb")
    popen = subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Process(name, popen, log_path, log)


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "sample_app", *args]


@dataclass
class SampleServer:
    """The sample app served on 127.0.0.1 with a real manager beside it."""

    url: str
    database_url: str
    app: Flask
    processes: list[Process] = field(default_factory=list)

    def add(self, method: str, **options: Any) -> int:
        """Add a task from this process (as a cron script or another page would)."""
        from sample_app import taches

        with self.app.app_context():
            return taches.add(method, **options)

    def status(self, tache_id: int) -> str:
        from sample_app import taches

        with self.app.app_context():
            tache = taches.get_or_raise(tache_id)
            return str(tache.status)

    def cancel(self, tache_id: int) -> None:
        from sample_app import taches

        with self.app.app_context():
            taches.cancel(tache_id, who="tests")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()}" for p in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited early:\n{process.output()}")


def wait_until_serving(server: SampleServer, deadline: float) -> None:
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(server.url + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the sample app did not answer:\n{server.logs()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleServer]:
    """``flask run`` + ``flask taches start --forever`` on a SQLite file in tmp."""
    from sample_app import create_app, db

    folder = tmp_path_factory.mktemp("sample")
    database_url = f"sqlite:///{folder / 'sample.sqlite'}"
    # The schema first, from this process: two processes creating it at once race.
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "TACHES_FOLDER": str(folder / "files"),
            "SECRET_KEY": "acceptance",
        }
    )
    port = free_port()
    env = clean_environ(
        {
            **SAMPLE_SETTINGS,
            "FLASK_SQLALCHEMY_DATABASE_URI": database_url,
            "FLASK_SECRET_KEY": "acceptance",
            "TACHES_FOLDER": str(folder / "files"),
        }
    )
    server = SampleServer(url=f"http://127.0.0.1:{port}", database_url=database_url, app=app)
    try:
        server.processes.append(
            start_process(
                "manager", flask_command("taches", "start", "--forever", "-v"), env, folder
            )
        )
        server.processes.append(
            start_process(
                "web",
                flask_command("run", "--host", "127.0.0.1", "--port", str(port), "--no-reload"),
                env,
                folder,
            )
        )
        wait_until_serving(server, time.monotonic() + SERVER_START)
        yield server
    finally:
        for process in reversed(server.processes):
            process.stop()
        with app.app_context():
            state = app.extensions["taches.state"]
            if state.built_store is not None:
                state.built_store.engine.dispose()
            db.session.remove()
            db.engine.dispose()
