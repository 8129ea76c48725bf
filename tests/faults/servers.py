"""Private PostgreSQL and MariaDB servers for the fault tests, which stop and restart them.

The machine's shared servers are never touched: each instance here has its own
data directory in a temporary folder, its own port and socket directory, and
is removed when the test session (or module) is done with it. ``listen`` adds
addresses beside the loopback (the host side of a test's veth links).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("FT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
MARIADB_INSTALL = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADBD = shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or "/usr/sbin/mariadbd"
START_WAIT = 60.0  # seconds a just-started server gets to answer


def missing(what: str) -> None:
    """Skip, or fail in CI, a fault test whose prerequisite is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"fault tests need {what}", pytrace=False)
    pytest.skip(f"fault tests need {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as(user: str, *command: str) -> list[str]:
    """``command`` run as ``user`` when we are root (the servers refuse to run as root)."""
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", user, "--", *command]


def _own_dir(user: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"ft-{user}-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def _wait_port(host: str, port: int, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    text = log.read_text(errors="replace") if log.exists() else ""
    raise AssertionError(f"{what} did not answer on {host}:{port}\n{text[-3000:]}")


class PrivatePostgres:
    """A PostgreSQL of our own: ``initdb`` into a temporary folder, ``pg_ctl`` it."""

    user = "postgres"

    def __init__(self, listen: Sequence[str] = ()) -> None:
        if not (PG_BIN / "initdb").exists():
            missing(f"PostgreSQL's initdb in {PG_BIN}")
        self.port = free_port()
        self.addresses = ["127.0.0.1", *listen]
        self.folder = _own_dir(self.user)
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"

    def create(self) -> None:
        listen = self.addresses[1:]
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            _run_as(self.user, *initdb, "--no-sync"),
            check=True,
            capture_output=True,
        )
        with open(self.data / "pg_hba.conf", "a") as hba:
            for address in listen:
                hba.write(f"host all all {address.rsplit('.', 1)[0]}.0/24 trust\n")
        self.start()

    def url(self, host: str = "127.0.0.1", database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@{host}:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses='{','.join(self.addresses)}'"
            " -c fsync=off -c synchronous_commit=off -c max_connections=200"
        )
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options]
        subprocess.run(
            _run_as(self.user, *pg_ctl, "-w", "-t", str(int(START_WAIT)), "start"),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would, no goodbye to the clients)."""
        subprocess.run(
            _run_as(
                self.user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
            ),
            check=False,
            capture_output=True,
        )

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class PrivateMariaDB:
    """A MariaDB of our own: ``mariadb-install-db`` into a temporary folder, ``mariadbd``."""

    user = "mysql"

    def __init__(self) -> None:
        if not (Path(MARIADB_INSTALL).exists() and Path(MARIADBD).exists()):
            missing("mariadb-install-db and mariadbd")
        self.port = free_port()
        self.folder = _own_dir(self.user)
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def create(self) -> None:
        subprocess.run(
            [
                MARIADB_INSTALL,
                "--no-defaults",
                f"--user={self.user}",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.start()

    def url(self, host: str = "127.0.0.1", database: str = "mysql") -> str:
        return f"mysql+pymysql://root@{host}:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--user={self.user}",
                f"--datadir={self.data}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.folder / 'sock'}",
                f"--pid-file={self.folder / 'pid'}",
                f"--log-error={self.log}",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port("127.0.0.1", self.port, "the private MariaDB", self.log)

    def stop(self, mode: str = "fast") -> None:
        """SIGTERM (``fast``) or SIGKILL (``immediate``) the server and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if mode == "immediate" else signal.SIGTERM)
        try:
            self.process.wait(START_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def private_server(
    dialect: str, listen: Sequence[str] = ()
) -> Iterator[PrivatePostgres | PrivateMariaDB]:
    """A private server of ``dialect`` (``postgresql`` or ``mysql``), removed after."""
    server: PrivatePostgres | PrivateMariaDB = (
        PrivatePostgres(listen) if dialect == "postgresql" else PrivateMariaDB()
    )
    try:
        server.create()
        yield server
    finally:
        server.remove()
