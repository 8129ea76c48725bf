"""What every no-op task of the side-by-side run does first: say it started.

One UDP datagram to the benchmark on 127.0.0.1: the task's key and the time
of its first line (``time.time()``, one clock for every process of the
machine). Port 0 means nobody listens (the enqueue-only runs): nothing is sent.
Standard library only: the peers' tasks and flask-taches' import it alike.
"""

from __future__ import annotations

import socket
import time


def report(key: str, port: int) -> None:
    started = time.time()
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"{key} {started!r}".encode(), ("127.0.0.1", int(port)))
