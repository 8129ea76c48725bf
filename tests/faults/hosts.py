"""Simulated hosts on this machine: each a network, UTS and PID namespace of its own.

A :class:`Host` is a network namespace (``ip netns``) joined to the machine by
a veth link (``10.N.I.1`` on the machine's side, ``10.N.I.2`` in the host),
in which managers run under ``unshare --uts --pid`` with the host's own
hostname and pid numbering. They reach a private PostgreSQL that listens on
the machine's side of every link. Everything is named after one random tag
and removed by :func:`simulated_hosts`, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.faults.servers import PrivatePostgres, missing, private_server
from tests.manager_helpers import APP, MARKER_VARIABLE, ROOT, Managers
from tests.manager_helpers import _parent_of as parent_of

HOST_VARIABLE = "FT_TEST_HOST"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def need_namespaces() -> None:
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "unshare")):
        missing("root, ip and unshare (simulated hosts)")


@dataclass
class Host:
    """One simulated host: its namespace, its link, its addresses."""

    name: str  # its hostname, as the rows record it
    netns: str
    outside: str  # the veth end on the machine's side
    server_ip: str  # the machine's address on the link (PostgreSQL listens there)
    own_ip: str

    def create(self) -> None:
        inside = f"{self.outside[:-1]}b"
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", self.netns)
        _ip("addr", "add", f"{self.server_ip}/30", "dev", self.outside)
        _ip("link", "set", self.outside, "up")
        _ip("-n", self.netns, "addr", "add", f"{self.own_ip}/30", "dev", inside)
        _ip("-n", self.netns, "link", "set", inside, "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.outside)  # its peer goes with it
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.netns)

    def link(self, up: bool) -> None:
        _ip("link", "set", self.outside, "up" if up else "down")

    def command(self, *args: str) -> list[str]:
        """``flask taches ARGS`` as run on this host (its namespaces, its hostname)."""
        flask = [sys.executable, "-m", "flask", "--app", APP, "taches", *args]
        script = f'hostname {self.name} && exec "$@"'
        # --kill-child: when unshare dies, the host's init dies, and with it all in the host.
        unshare = ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child"]
        return ["ip", "netns", "exec", self.netns, *unshare, "sh", "-c", script, "sh", *flask]


class HostManagers(Managers):
    """:class:`Managers` whose managers run on simulated hosts, on the host's database URL."""

    def __init__(self, tmp_path: Path, server: PrivatePostgres, database: str, **settings: str):
        super().__init__(tmp_path, **settings)
        self.server, self.database = server, database

    def start_on(self, host: Host, *args: str) -> subprocess.Popen[bytes]:
        output = self.tmp_path / f"manager-{len(self.processes)}-{host.name}.log"
        env = {
            **self.env,
            "FT_TEST_DATABASE_URL": self.server.url(host.server_ip, self.database),
            HOST_VARIABLE: host.name,
        }
        with open(output, "wb") as out:
            process = subprocess.Popen(
                host.command("start", *args),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append((process, output))
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        """SIGTERM the manager inside the host (``unshare`` passes no signal on)."""
        for pid in _children_of(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        return process.wait(timeout)

    def host_pids(self, host: Host) -> list[int]:
        """Every process of this test running on ``host`` (pids as the machine sees them).

        The ``unshare`` processes carry the test's marker in their environment;
        what runs under them is found by its PID namespace (a manager that sets
        its process title may overwrite its environment's memory).
        """
        needles = (
            f"{MARKER_VARIABLE}={self.marker}".encode(),
            f"{HOST_VARIABLE}={host.name}".encode(),
        )
        launchers, by_namespace = [], {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                by_namespace[int(entry.name)] = os.readlink(entry / "ns" / "pid")
                environ = (entry / "environ").read_bytes().split(b"\0")
                if all(needle in environ for needle in needles):
                    launchers.append(int(entry.name))
        namespaces = {by_namespace.get(pid) for pid in by_namespace if parent_of(pid) in launchers}
        inside = [pid for pid, ns in by_namespace.items() if ns in namespaces - {None}]
        return sorted({*launchers, *inside})

    def freeze(self, host: Host, frozen: bool) -> None:
        """SIGSTOP (or SIGCONT) every process of the test on ``host``."""
        for pid in self.host_pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)


@contextlib.contextmanager
def simulated_hosts(count: int) -> Iterator[tuple[list[Host], PrivatePostgres]]:
    """``count`` hosts and a private PostgreSQL listening on their links; all removed after."""
    need_namespaces()
    tag = uuid.uuid4().hex[:4]
    subnet = random.randint(100, 250)
    hosts = [
        Host(
            name=f"host{n}-{tag}",
            netns=f"ft-{tag}-h{n}",
            outside=f"ft{tag}{n}a",
            server_ip=f"10.{subnet}.{n}.1",
            own_ip=f"10.{subnet}.{n}.2",
        )
        for n in range(1, count + 1)
    ]
    try:
        for host in hosts:
            host.create()
        with private_server("postgresql", [h.server_ip for h in hosts]) as server:
            assert isinstance(server, PrivatePostgres)
            yield hosts, server
    finally:
        for host in hosts:
            host.remove()


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found
